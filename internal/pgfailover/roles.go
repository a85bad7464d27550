package pgfailover

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CreateOwner creates (or updates the password of) the login role name, with password,
// and makes it the owner of the application database, on the primary; the standbys get it
// through replication. PostgreSQL 15 lets only a database's owner (and superusers) create
// tables in its public schema, so the application's migrations need this.
func (f *Formation) CreateOwner(ctx context.Context, name, password string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("create owner: role name %q: want [a-z0-9_-]{1,63}", name)
	}
	p, err := f.Primary(ctx)
	if err != nil {
		return fmt.Errorf("create owner %s: %w", name, err)
	}
	conn, err := connect(ctx, p, "postgres")
	if err != nil {
		return fmt.Errorf("create owner %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if err := loginRole(ctx, conn, name, password); err != nil {
		return fmt.Errorf("create owner %s: %w", name, err)
	}
	db := pgx.Identifier{f.opts.Database}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+db+" OWNER TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create owner %s: make it the owner of %s: %w", name, f.opts.Database, err)
	}
	return nil
}

// loginRole creates the login role name with password, or sets the password of an
// existing one.
func loginRole(ctx context.Context, conn *pgx.Conn, name, password string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	// The password is a literal in the statement (utility statements take no parameters):
	// format's %L quotes it. It is hashed (scram-sha-256) before it is stored.
	var stmt string
	if err := conn.QueryRow(ctx, "SELECT format('"+verb+" ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", name, password).Scan(&stmt); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s role: %w", strings.ToLower(verb), err)
	}
	return nil
}

// setPassword sets the password of pg_auto_failover's role on node n (database db).
func setPassword(ctx context.Context, n *Node, db, role, password string) error {
	conn, err := connect(ctx, n, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := loginRole(ctx, conn, role, password); err != nil {
		return fmt.Errorf("node %s: password of %s: %w", n.Name(), role, err)
	}
	return nil
}

// AddHBA appends lines (pg_hba.conf records, such as "hostssl app app 10.0.0.0/24
// scram-sha-256") to pg_hba.conf on every data node, skipping lines already there, and
// reloads the nodes that run. pg_hba.conf is not replicated: every data node needs the
// same records, or clients are refused after a failover. It fails if PostgreSQL reports
// a record it cannot parse.
func (f *Formation) AddHBA(ctx context.Context, lines ...string) error {
	var errs []error
	for _, n := range f.nodes {
		if err := appendLines(filepath.Join(n.PGData(), "pg_hba.conf"), lines); err != nil {
			errs = append(errs, fmt.Errorf("node %s: pg_hba.conf: %w", n.Name(), err))
			continue
		}
		if _, err := n.PostmasterPID(); err != nil {
			continue // it reads the file when it starts
		}
		if err := reloadHBA(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func reloadHBA(ctx context.Context, n *Node) error {
	conn, err := connect(ctx, n, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
	if err != nil {
		return fmt.Errorf("node %s: check pg_hba.conf: %w", n.Name(), err)
	}
	bad, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var line int
		var msg string
		err := r.Scan(&line, &msg)
		return fmt.Sprintf("line %d: %s", line, msg), err
	})
	if err != nil {
		return fmt.Errorf("node %s: check pg_hba.conf: %w", n.Name(), err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("node %s: pg_hba.conf: %s", n.Name(), strings.Join(bad, "; "))
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("node %s: reload: %w", n.Name(), err)
	}
	return nil
}
