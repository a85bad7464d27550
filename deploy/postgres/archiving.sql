-- WAL archiving into pgBackRest's repository, on EVERY data node (psql as postgres:
-- sudo -u postgres psql -f archiving.sql), then restart PostgreSQL on that node.
-- A standby does not archive; after a failover the new primary does, into the same
-- repository, on its new timeline.
ALTER SYSTEM SET archive_mode = 'on';
ALTER SYSTEM SET archive_command = 'pgbackrest --stanza=outrigger archive-push %p';
-- A quiet database still ships a WAL segment at least once a minute: at most a minute
-- of commits is lost if both data nodes are lost at once.
ALTER SYSTEM SET archive_timeout = '60s';
