#!/usr/bin/env bash
# Installs the packages the geometry tests need when they are missing (PostGIS for the
# local PostgreSQL, SpatiaLite for SQLite; Debian packages, through apt-get), then starts
# any loopback service the test suites use that is not answering, and waits for it:
# PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672, NATS (JetStream) 4222.
# The start commands are those of the development machines (Debian packages); elsewhere,
# start the services yourself (see README) and this script only checks them.
# Exit status: the number of services that are still down.
set -u

tcp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, check command, seconds
  local name=$1 check=$2 secs=$3 i
  for ((i = 0; i < secs * 2; i++)); do
    if eval "$check" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 0.5
  done
  echo "services: $name did not come up within ${secs}s" >&2
  return 1
}

ensure() { # name, check command, start command, seconds
  local name=$1 check=$2 start=$3 secs=$4
  if eval "$check" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
  echo "services: starting $name"
  eval "$start" >/dev/null 2>&1 || echo "services: could not run the start command of $name: $start" >&2
  wait_for "$name" "$check" "$secs"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Packages the geometry tests need, installed once; quiet when they are there.
geometry_packages() {
  local need=() pg
  command -v dpkg-query >/dev/null 2>&1 || return 0
  pg=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -n "$pg" ] && ! installed "postgresql-$pg-postgis-3"; then need+=("postgresql-$pg-postgis-3"); fi
  installed libsqlite3-mod-spatialite || need+=(libsqlite3-mod-spatialite)
  ((${#need[@]})) || return 0
  echo "services: installing ${need[*]}"
  local install="DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${need[*]}"
  # A fresh machine may have no package lists yet: read them once, then try again.
  if ! eval "$install" >/dev/null 2>&1 && ! { apt-get update -qq && eval "$install"; } >/dev/null 2>&1; then
    echo "services: could not install ${need[*]}; the geometry tests will fail and say so" >&2
  fi
}

geometry_packages

down=0
ensure postgres "pg_isready -q -h 127.0.0.1 -p 5432 || tcp_up 5432" \
  'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start' 60 || down=$((down + 1))
ensure mariadb "mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping || tcp_up 3306" \
  'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' 60 || down=$((down + 1))
ensure redis "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG || tcp_up 6379" \
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log' 30 || down=$((down + 1))
ensure rabbitmq "tcp_up 5672" 'rabbitmq-server -detached' 120 || down=$((down + 1))
ensure nats "tcp_up 4222" \
  'start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log' 30 || down=$((down + 1))
exit "$down"
