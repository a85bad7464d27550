package store

// MigrateLockKey is exported for tests that hold the migration lock.
const MigrateLockKey = migrateLockKey
