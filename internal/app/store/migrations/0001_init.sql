-- Accounts, login failures, files in 256 KiB chunks, and sessions (internal/app/pgsession).

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per failed login, so every app server sees the same counts.
CREATE TABLE login_failures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_ip inet,
    username  text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_ip_at ON login_failures (client_ip, at);
CREATE INDEX login_failures_username_at ON login_failures (username, at);
CREATE INDEX login_failures_at ON login_failures (at);

CREATE TABLE files (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL DEFAULT 0,
    sha256       text NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT 'uploading' CHECK (state IN ('uploading', 'ready')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_owner_listing ON files (owner, created_at DESC, id DESC) WHERE state = 'ready';
CREATE INDEX files_uploading ON files (updated_at) WHERE state = 'uploading';

CREATE TABLE file_chunks (
    file_id uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (file_id, seq)
);
-- Uploads are mostly compressed already: store chunks out of line without trying to compress.
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Server-side sessions; key = sha256(session id), data = encrypted, signed gob of the values.
CREATE TABLE sessions (
    key         bytea PRIMARY KEY,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
