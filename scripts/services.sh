#!/usr/bin/env bash
# services.sh: make sure PostgreSQL and NATS (with JetStream) answer, starting
# the machine's installed servers when they do not. Prints what it did and
# exits non-zero when a service cannot be had.
#
#   scripts/services.sh            # both
#   scripts/services.sh postgres   # only PostgreSQL
set -u

want=${1:-all}
db_url=${CHRONICLE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
nats_host=127.0.0.1
nats_port=4222

pg_up() { pg_isready -q -d "$db_url" 2>/dev/null; }
nats_up() { (exec 3<>"/dev/tcp/$nats_host/$nats_port") 2>/dev/null; }

wait_for() { # name check seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    "$2" && return 0
    sleep 0.1
  done
  return 1
}

status=0
if [ "$want" = all ] || [ "$want" = postgres ]; then
  if pg_up; then
    echo "services: PostgreSQL answers at ${db_url%%\?*}"
  else
    echo "services: PostgreSQL is not answering; starting the local cluster"
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      for v in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>&1 | sed 's/^/services:   /'
      done
    else
      echo "services:   no pg_ctlcluster here; start PostgreSQL yourself or set CHRONICLE_TEST_DATABASE_URL" >&2
    fi
    if wait_for postgres pg_up 30; then
      echo "services: PostgreSQL started"
    else
      echo "services: FAILED: PostgreSQL does not answer at ${db_url%%\?*}" >&2
      status=1
    fi
  fi
  if pg_up; then
    # Make sure the test database exists (a fresh cluster has only postgres).
    dbname=$(sed -E 's|^[a-z]+://[^/]*/([^?]*).*|\1|' <<<"$db_url")
    admin_url=$(sed -E "s|/${dbname}(\?\|$)|/postgres\1|" <<<"$db_url")
    if [ -n "$dbname" ] && ! psql -qtAX -d "$db_url" -c 'select 1' >/dev/null 2>&1; then
      psql -qtAX -d "$admin_url" -c "create database \"$dbname\"" && echo "services: created database $dbname"
    fi
  fi
fi

if [ "$want" = all ] || [ "$want" = nats ]; then
  if nats_up; then
    echo "services: NATS answers at $nats_host:$nats_port"
  elif command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    echo "services: NATS is not answering; starting nats-server with JetStream"
    bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    mkdir -p /var/lib/nats-server 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec "$bin" -- \
      -a "$nats_host" -p "$nats_port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    if wait_for nats nats_up 15; then
      echo "services: NATS started"
    else
      echo "services: FAILED: NATS does not answer at $nats_host:$nats_port" >&2
      status=1
    fi
  else
    echo "services: NATS is not answering and nats-server is not installed (tests use an in-process server)"
  fi
fi
exit $status
