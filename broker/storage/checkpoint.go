package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Small per-partition state files. Each is written to a temporary file,
// fsynced, renamed over the old one and the directory fsynced, so a crash
// leaves either the old or the new content, never a mix.
const (
	recoveryPointFile   = "recovery-point"
	logStartOffsetFile  = "log-start-offset"
	leaderEpochFile     = "leader-epoch-checkpoint"
	producerStateFile   = "producer-state"
	partitionMetaFile   = "partition.metadata"
	highWatermarkFile   = "high-watermark"
	tmpSuffix           = ".tmp"
	checkpointVersion   = 0
	cleanShutdownMarker = ".clean-shutdown"
	lockFile            = ".lock"
)

// writeFileAtomic replaces path with data durably.
func writeFileAtomic(path string, data []byte) error {
	return writeFilesAtomic(filepath.Dir(path), []namedContent{{filepath.Base(path), data}})
}

type namedContent struct {
	name string
	data []byte
}

// writeFilesAtomic replaces several files of dir, each atomically, with one
// directory fsync for all of them.
func writeFilesAtomic(dir string, files []namedContent) error {
	for _, f := range files {
		if err := writeTemp(filepath.Join(dir, f.name+tmpSuffix), f.data); err != nil {
			return err
		}
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.Rename(path+tmpSuffix, path); err != nil {
			os.Remove(path + tmpSuffix)
			return fmt.Errorf("renaming %s: %w", path+tmpSuffix, err)
		}
	}
	return syncDir(dir)
}

func writeTemp(tmp string, data []byte) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", tmp, werr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// readCheckpoint reads a text checkpoint: a version line, then lines of
// space-separated integers. It returns the lines after the version.
func readCheckpoint(path string, fields int) ([][]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var rows [][]int64
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		parts := strings.Fields(line)
		if first {
			if line != strconv.Itoa(checkpointVersion) {
				return nil, fmt.Errorf("%s: unknown version %q", path, line)
			}
			first = false
			continue
		}
		if len(parts) != fields {
			return nil, fmt.Errorf("%s: line %q: want %d fields", path, line, fields)
		}
		row := make([]int64, fields)
		for i, p := range parts {
			if row[i], err = strconv.ParseInt(p, 10, 64); err != nil {
				return nil, fmt.Errorf("%s: line %q: %w", path, line, err)
			}
		}
		rows = append(rows, row)
	}
	if first {
		return nil, fmt.Errorf("%s: empty", path)
	}
	return rows, nil
}

func formatCheckpoint(rows [][]int64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n", checkpointVersion)
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatInt(v, 10))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// recoveryPoint marks the end of the log prefix known to be on disk with
// its indexes: offset, and the segment and byte position where it lies.
type recoveryPoint struct {
	offset   int64
	segment  int64
	position int64
}

func readRecoveryPoint(dir string) (recoveryPoint, error) {
	rows, err := readCheckpoint(filepath.Join(dir, recoveryPointFile), 3)
	if err != nil {
		return recoveryPoint{}, err
	}
	if len(rows) != 1 {
		return recoveryPoint{}, errors.New("recovery-point: want one line")
	}
	return recoveryPoint{offset: rows[0][0], segment: rows[0][1], position: rows[0][2]}, nil
}

func writeRecoveryPoint(dir string, rp recoveryPoint) error {
	return writeFileAtomic(filepath.Join(dir, recoveryPointFile), encodeRecoveryPoint(rp))
}

func encodeRecoveryPoint(rp recoveryPoint) []byte {
	return formatCheckpoint([][]int64{{rp.offset, rp.segment, rp.position}})
}

// readSingleOffset reads a checkpoint holding one offset.
func readSingleOffset(path string) (int64, error) {
	rows, err := readCheckpoint(path, 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("%s: want one line", path)
	}
	return rows[0][0], nil
}

func readLogStartOffset(dir string) (int64, error) {
	rows, err := readCheckpoint(filepath.Join(dir, logStartOffsetFile), 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, errors.New("log-start-offset: want one line")
	}
	return rows[0][0], nil
}

func writeLogStartOffset(dir string, off int64) error {
	return writeFileAtomic(filepath.Join(dir, logStartOffsetFile), formatCheckpoint([][]int64{{off}}))
}
