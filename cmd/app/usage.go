package main

// usageText is what `app -h` and `app help` print on stdout.
const usageText = `Usage: app [-version]

app is Outrigger's stateless web service. It is configured by environment
variables (under systemd: EnvironmentFile=/etc/app/app.env, root-only):

  DATABASE_URL       PostgreSQL connection string (required)
  SESSION_KEYS       comma-separated random secrets of >= 32 characters (required;
                     openssl rand -base64 48); the first signs, the rest still verify
  APP_LISTEN         listen address (default :8080; firewall it to the lbs)
  TRUSTED_PROXIES    CIDRs of the lbs: X-Forwarded-For is believed only from them
  SESSION_MAX_AGE    session lifetime (default 720h)
  COOKIE_SECURE      true (default), or false for plain-HTTP local use only
  APP_INSTANCE       name in responses and logs (default hostname:port)
  MAX_UPLOAD_BYTES   largest upload body (default 33554432, 32 MiB)
  DB_MAX_CONNS       database pool size (default 16)
  DB_RETRY_TIMEOUT   the most a request waits on the database in all, retries
                     included, before it answers 503 (default 4s; keep it below
                     lb's proxy.per_try_timeout)
  SHUTDOWN_DELAY     after SIGTERM, keep serving this long (default 5s)
  SHUTDOWN_TIMEOUT   then wait this long for requests in flight (default 25s)
  LOG_FORMAT         auto (default), text or json

Set by systemd, not by hand (app.service's Type=notify and WatchdogSec=):
  NOTIFY_SOCKET      where READY=1, STOPPING=1 and the watchdog's WATCHDOG=1 go
  WATCHDOG_USEC      the watchdog timeout: WATCHDOG=1 every half of it, only while
                     the app answers a GET of its own /healthz (WATCHDOG_PID, if
                     set, must be the app's own process id)

A bad or placeholder value (CHANGE-ME, a secret of few different characters)
stops the app with exit status 2 and a line naming the variable.
Flags:
  -version           print the version and exit
`
