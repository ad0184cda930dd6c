package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/scram"
)

// bootstrapUser is one entry of tributary.scram.bootstrap.file: a user
// and mechanism with either a password (salted here) or, as the boot agent
// writes it from the boot document's secrets, the salted credential itself
// (salt, iterations, stored and server key; JSON base64 for the bytes), so
// that no password reaches the instance.
type bootstrapUser struct {
	Username   string `json:"username"`
	Mechanism  string `json:"mechanism"`
	Password   string `json:"password"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// credential is the entry's salted credential.
func (u bootstrapUser) credential(m scram.Mechanism) (scram.Credential, error) {
	salted := len(u.Salt) > 0 || u.Iterations != 0 || len(u.StoredKey) > 0 || len(u.ServerKey) > 0
	switch {
	case u.Password != "" && salted:
		return scram.Credential{}, errors.New("both a password and a salted credential: give one")
	case salted:
		c := scram.Credential{Mechanism: m, Salt: u.Salt, Iterations: u.Iterations, StoredKey: u.StoredKey, ServerKey: u.ServerKey}
		if err := c.Validate(); err != nil {
			return scram.Credential{}, err
		}
		return c, nil
	case u.Password == "":
		return scram.Credential{}, errors.New("empty password")
	}
	return scram.NewCredential(m, u.Password, scram.DefaultIterations)
}

// importScramBootstrap stores the credential of each user of
// tributary.scram.bootstrap.file in the metadata where that user has none
// of that mechanism: a password changed since (AlterUserScramCredentials)
// is kept. Only salted records reach the metadata; a password in the file
// stays in the file. Errors name the file and the entry, never a password
// or a key.
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
		return fmt.Errorf("tributary.scram.bootstrap.file %s: want a list of {username, mechanism, password} or {username, mechanism, salt, iterations, stored_key, server_key}", path)
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
		// Checked even when the user has a credential already: a bad
		// entry is a bad file, whatever the metadata holds.
		cred, err := u.credential(m)
		if err != nil {
			return fmt.Errorf("tributary.scram.bootstrap.file %s: entry %d (%s): %w", path, i+1, u.Username, err)
		}
		if _, ok := st.ScramCredential(u.Username, m.String()); ok {
			continue
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
	res, err := s.meta.AlterScramCredentials(context.Background(), cmd)
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
