package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/scram"
)

// bootstrapUser is one entry of tributary.scram.bootstrap.file, as the
// boot agent writes it from the boot document's secrets.
type bootstrapUser struct {
	Username  string `json:"username"`
	Mechanism string `json:"mechanism"`
	Password  string `json:"password"`
}

// importScramBootstrap salts the users of tributary.scram.bootstrap.file
// and stores each credential in the metadata where that user has none of
// that mechanism: a password changed since (AlterUserScramCredentials) is
// kept. Only salted records reach the metadata; the file's passwords stay
// in the file. Errors name the file and the entry, never a password.
func (s *Server) importScramBootstrap() error {
	path, ok := s.static.Configured("tributary.scram.bootstrap.file")
	if !ok || path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tributary.scram.bootstrap.file: %w", err)
	}
	var users []bootstrapUser
	if err := json.Unmarshal(b, &users); err != nil {
		// The JSON error may quote the file; say where, not what.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("tributary.scram.bootstrap.file %s: not JSON (at byte %d)", path, se.Offset)
		}
		return fmt.Errorf("tributary.scram.bootstrap.file %s: want a list of {username, mechanism, password}", path)
	}
	st := s.node.Controller.State()
	byUser := map[string]int{}
	var cmd metadata.AlterScramCredentials
	cmd.IfAbsent = true
	for i, u := range users {
		if err := scram.ValidateUsername(u.Username); err != nil {
			return fmt.Errorf("tributary.scram.bootstrap.file %s: entry %d: %w", path, i+1, err)
		}
		m, err := scram.ParseMechanism(u.Mechanism)
		if err != nil {
			return fmt.Errorf("tributary.scram.bootstrap.file %s: entry %d (%s): %w", path, i+1, u.Username, err)
		}
		if u.Password == "" {
			return fmt.Errorf("tributary.scram.bootstrap.file %s: entry %d (%s): empty password", path, i+1, u.Username)
		}
		if _, ok := st.ScramCredential(u.Username, m.String()); ok {
			continue
		}
		cred, err := scram.NewCredential(m, u.Password, scram.DefaultIterations)
		if err != nil {
			return fmt.Errorf("tributary.scram.bootstrap.file %s: entry %d (%s): %w", path, i+1, u.Username, err)
		}
		rec, err := cred.MarshalBinary()
		if err != nil {
			return err
		}
		j, ok := byUser[u.Username]
		if !ok {
			j = len(cmd.Users)
			byUser[u.Username] = j
			cmd.Users = append(cmd.Users, metadata.ScramUserAlteration{User: u.Username})
		}
		cmd.Users[j].Upsertions = append(cmd.Users[j].Upsertions, metadata.ScramRecord{Mechanism: m.String(), Record: rec})
	}
	if len(cmd.Users) == 0 {
		return nil
	}
	res, err := s.meta.AlterScramCredentials(cmd)
	if err != nil {
		return fmt.Errorf("importing the SCRAM users of %s: %w", path, err)
	}
	for i, err := range res {
		if err != nil {
			return fmt.Errorf("importing SCRAM user %s of %s: %w", cmd.Users[i].User, path, err)
		}
	}
	s.log.Info("imported SCRAM users", "file", path, "users", len(cmd.Users))
	return nil
}
