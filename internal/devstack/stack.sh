#!/usr/bin/env bash
# The local stack: real servers on loopback for development, tests, the demo and CI.
#
#   stack.sh up              install what is missing, start everything, write .stack/env
#   stack.sh down [--purge]  stop everything by recorded pid (--purge also deletes .stack/)
#   stack.sh status          one line per service; exit 0 only when all seven answer
#   stack.sh contract        write .stack/env and the configurations again, starting nothing
#   stack.sh test-tools      install what only the tests need (Chromium, systemd, podman, runc)
#   stack.sh start|stop SVC  one service: pg, zk, ch1, ch2, ch3, azurite, ch-modern
#
# ch-modern is a single ClickHouse 26.7 next to the 18.16 cluster: clickhouse-local from chdb's
# libchdb.so (npm, pinned) serving the native protocol and HTTP (see start_ch_modern).
#
# Ports avoid the servers' defaults so a developer's own services don't clash. Override with:
#   STACK_DIR (default <repo>/.stack)   STACK_PG_PORT (25432)   STACK_ZK_PORT (22181)
#   STACK_CH_TCP_BASE (29000: replica N listens on base+N)   STACK_CH_HTTP_BASE (28122)
#   STACK_CH_INTERSERVER_BASE (29010)   STACK_AZURITE_PORT (20000)   STACK_WEB_PORT (28080)
#   STACK_CH_MODERN_TCP_PORT (tcp base+20)   STACK_CH_MODERN_HTTP_PORT (http base+10)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
# The ports a stack was brought up with are kept in its state dir, so that later start, stop and
# status calls (tests stop and start replicas) reach the same servers without repeating overrides.
# shellcheck source=/dev/null
[ -f "$STACK_DIR/ports" ] && . "$STACK_DIR/ports"
PG_PORT="${STACK_PG_PORT:-25432}"
ZK_PORT="${STACK_ZK_PORT:-22181}"
CH_TCP_BASE="${STACK_CH_TCP_BASE:-29000}"
CH_HTTP_BASE="${STACK_CH_HTTP_BASE:-28122}"
CH_INTER_BASE="${STACK_CH_INTERSERVER_BASE:-29010}"
AZURITE_PORT="${STACK_AZURITE_PORT:-20000}"
WEB_PORT="${STACK_WEB_PORT:-28080}"
# Derived from the cluster's bases, so a stack moved by an offset moves ch-modern with it.
CH_MODERN_TCP="${STACK_CH_MODERN_TCP_PORT:-$((CH_TCP_BASE + 20))}"
CH_MODERN_HTTP="${STACK_CH_MODERN_HTTP_PORT:-$((CH_HTTP_BASE + 10))}"
AZURITE_VERSION="3.37.0"
# chdb's build of ClickHouse 26.7 (SELECT version() answers 26.7.2.1); about 566 MB unpacked.
CHDB_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.7.3-stable.1"
CHDB_DIR="$STACK_DIR/npm/node_modules/$CHDB_PACKAGE"
CH_MODERN_DIR="$STACK_DIR/ch-modern"
LAUNCHER_SRC="$ROOT/internal/devstack/chmodern/launcher.c"
LAUNCHER="$CH_MODERN_DIR/launcher"
PGBIN=/usr/lib/postgresql/15/bin
REPLICAS=(ch1 ch2 ch3)
SERVICES=(pg zk ch1 ch2 ch3 azurite ch-modern)
# Azurite's documented development account: not a secret.
AZURE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_CONN="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURE_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1;"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

ch_n() { echo "${1#ch}"; }
ch_tcp() { echo $((CH_TCP_BASE + $(ch_n "$1"))); }
ch_http() { echo $((CH_HTTP_BASE + $(ch_n "$1"))); }
ch_inter() { echo $((CH_INTER_BASE + $(ch_n "$1"))); }
ch_dir() { echo "$STACK_DIR/$1"; }

# as_postgres runs a command as the postgres user: initdb refuses to run as root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- install

install_missing() {
  local pkgs=()
  [ -x "$PGBIN/initdb" ] || pkgs+=(postgresql)
  [ -x /usr/sbin/clickhouse-server ] || pkgs+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || pkgs+=(clickhouse-client)
  [ -f /usr/share/java/zookeeper.jar ] || pkgs+=(zookeeper)
  command -v java >/dev/null || pkgs+=(default-jre-headless)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v zstd >/dev/null || pkgs+=(zstd)
  [ -x /usr/bin/time ] || pkgs+=(time) # GNU time: make bench's peak RSS of each step
  command -v npm >/dev/null || pkgs+=(npm)
  command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing ${pkgs[*]} (apt)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  if [ ! -x "$STACK_DIR/npm/node_modules/.bin/azurite-blob" ]; then
    log "installing azurite@$AZURITE_VERSION (npm, into $STACK_DIR/npm)"
    mkdir -p "$STACK_DIR/npm"
    npm install --prefix "$STACK_DIR/npm" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
  fi
  install_ch_modern
}

# install_ch_modern fetches the pinned libchdb.so and builds the launcher that runs it.
install_ch_modern() {
  require_avx2
  if ! grep -qs "\"version\": \"$CHDB_VERSION\"" "$CHDB_DIR/package.json" || [ ! -f "$CHDB_DIR/libchdb.so" ]; then
    log "installing $CHDB_PACKAGE@$CHDB_VERSION (npm, about 566 MB, into $STACK_DIR/npm)"
    mkdir -p "$STACK_DIR/npm"
    npm install --prefix "$STACK_DIR/npm" --no-audit --no-fund --loglevel=error "$CHDB_PACKAGE@$CHDB_VERSION" >/dev/null
  fi
  if [ ! -x "$LAUNCHER" ] || [ "$LAUNCHER_SRC" -nt "$LAUNCHER" ]; then
    mkdir -p "$CH_MODERN_DIR"
    gcc -O2 -Wall -o "$LAUNCHER" "$LAUNCHER_SRC" -ldl || die "building the ch-modern launcher from $LAUNCHER_SRC failed"
  fi
}

# require_avx2 fails early and plainly where libchdb.so would die of an illegal instruction.
require_avx2() {
  grep -qw avx2 /proc/cpuinfo ||
    die "ch-modern needs a CPU with AVX2 (chdb's libchdb.so is built for it) and this one has none: run the stack on an x86-64 machine with AVX2"
}

# install_test_tools adds what only the test suite needs: Debian's Chromium, which the status
# page's end-to-end test drives headless (no browser is ever downloaded); Debian's systemd, whose
# systemd-analyze verifies deploy/systemd's units; and Debian's podman and runc, which build the
# container image and run it (deploy/image_podman_integration_test.go).
install_test_tools() {
  local pkgs=()
  command -v systemd-analyze >/dev/null || pkgs+=(systemd)
  command -v chromium >/dev/null || pkgs+=(chromium)
  command -v podman >/dev/null || pkgs+=(podman)
  [ -x /usr/sbin/runc ] || command -v runc >/dev/null || pkgs+=(runc)
  [ ${#pkgs[@]} -gt 0 ] || return 0
  log "installing ${pkgs[*]} (apt, for the tests)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# ---------------------------------------------------------------- probes

# four_letter sends a ZooKeeper four-letter word and prints the answer.
four_letter() {
  timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$ZK_PORT"' && printf %s "$1" >&3 && cat <&3' _ "$1" 2>/dev/null || true
}

pg_up() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }
zk_up() { four_letter srvr | grep -q '^Mode:'; }
ch_up() { [ "$(curl -fsS -m 3 "http://127.0.0.1:$(ch_http "$1")/ping" 2>/dev/null)" = "Ok." ]; }
# ch_modern_version prints the engine's version when its HTTP interface answers a query: /ping
# alone would also pass while another server holds the port.
ch_modern_version() {
  local v
  v=$(curl -fsS -m 3 "http://127.0.0.1:$CH_MODERN_HTTP/?query=SELECT%20version()" 2>/dev/null) || return 1
  [[ $v =~ ^[0-9]+\.[0-9]+\. ]] && echo "$v"
}
ch_modern_up() { ch_modern_version >/dev/null; }
azurite_up() {
  local code
  code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1?comp=list" 2>/dev/null || true)
  [ -n "$code" ] && [ "$code" != 000 ]
}

svc_up() {
  case "$1" in
    pg) pg_up ;; zk) zk_up ;; ch1 | ch2 | ch3) ch_up "$1" ;; azurite) azurite_up ;; ch-modern) ch_modern_up ;;
    *) die "unknown service '$1' (pg, zk, ch1, ch2, ch3, azurite, ch-modern)" ;;
  esac
}

svc_addr() {
  case "$1" in
    pg) echo "127.0.0.1:$PG_PORT" ;; zk) echo "127.0.0.1:$ZK_PORT" ;;
    ch1 | ch2 | ch3) echo "127.0.0.1:$(ch_tcp "$1") (http $(ch_http "$1"))" ;;
    azurite) echo "127.0.0.1:$AZURITE_PORT" ;;
    ch-modern) echo "127.0.0.1:$CH_MODERN_TCP (http $CH_MODERN_HTTP) $(ch_modern_version || true)" ;;
  esac
}

svc_log() {
  case "$1" in
    pg) echo "$STACK_DIR/pg/postgres.log" ;; zk) echo "$STACK_DIR/zk/zk.log" ;;
    ch1 | ch2 | ch3) echo "$(ch_dir "$1")/log/clickhouse-server.err.log" ;;
    azurite) echo "$STACK_DIR/azurite/azurite.log" ;;
    ch-modern) echo "$CH_MODERN_DIR/ch-modern.log" ;;
  esac
}

# wait_ready polls a service's probe until it answers, up to a deadline; on timeout it shows the
# service's log and fails naming the service.
wait_ready() {
  local svc=$1 deadline=$((SECONDS + ${2:-60}))
  until svc_up "$svc"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$svc did not become ready; last lines of $(svc_log "$svc"):"
      tail -n 30 "$(svc_log "$svc")" >&2 2>/dev/null || true
      die "$svc failed to start"
    fi
    local pid
    pid=$(cat "$STACK_DIR/$svc.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && ! alive "$pid" && [ "$svc" != pg ]; then
      log "$svc exited during start-up; last lines of $(svc_log "$svc"):"
      tail -n 30 "$(svc_log "$svc")" >&2 2>/dev/null || true
      die "$svc failed to start"
    fi
    sleep 0.2
  done
}

# port_free fails with the override variable's name when something else holds a port.
port_free() {
  local port=$1 var=$2
  if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
    die "port $port is taken by another process; choose another with $var=..."
  fi
}

# spawn starts a long-running server detached from this shell and records its pid.
spawn() {
  local svc=$1 logfile=$2
  shift 2
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$STACK_DIR/$svc.pid"
}

# ---------------------------------------------------------------- services

start_pg() {
  pg_up && return
  port_free "$PG_PORT" STACK_PG_PORT
  local dir="$STACK_DIR/pg"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    echo tracevault >"$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/pwfile"
    as_postgres "$PGBIN/initdb" -D "$dir/data" -U tracevault --pwfile="$dir/pwfile" \
      --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20" start >/dev/null ||
    { tail -n 30 "$dir/postgres.log" >&2; die "pg failed to start"; }
  head -n 1 "$dir/data/postmaster.pid" >"$STACK_DIR/pg.pid"
  wait_ready pg 60
  if ! as_postgres psql -h "$dir" -p "$PG_PORT" -U tracevault -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'langfuse'" | grep -q 1; then
    as_postgres psql -h "$dir" -p "$PG_PORT" -U tracevault -d postgres -qc "CREATE DATABASE langfuse" >/dev/null
  fi
}

stop_pg() {
  local dir="$STACK_DIR/pg"
  [ -f "$dir/data/postmaster.pid" ] || { rm -f "$STACK_DIR/pg.pid"; return 0; }
  as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  rm -f "$STACK_DIR/pg.pid"
}

start_zk() {
  zk_up && return
  port_free "$ZK_PORT" STACK_ZK_PORT
  local dir="$STACK_DIR/zk"
  mkdir -p "$dir/data" "$dir/conf"
  cat >"$dir/conf/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  spawn zk "$dir/zk.log" java -Xmx512m -cp "$dir/conf:/usr/share/java/zookeeper.jar" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/conf/zoo.cfg"
  wait_ready zk 60
}

write_ch_config() {
  local r=$1 dir
  dir=$(ch_dir "$r")
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  # Two cluster names over the same three replicas: `default`, and `langfuse` for the tests of
  # what Langfuse operators run with a cluster name of their own (CLICKHOUSE_CLUSTER_NAME).
  local replicas=""
  for other in "${REPLICAS[@]}"; do
    replicas+="<replica><host>127.0.0.1</host><port>$(ch_tcp "$other")</port></replica>"
  done
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>information</level>
    <log>$dir/log/clickhouse-server.log</log>
    <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
    <size>100M</size>
    <count>3</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$(ch_tcp "$r")</tcp_port>
  <http_port>$(ch_http "$r")</http_port>
  <interserver_http_port>$(ch_inter "$r")</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <max_connections>1024</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mark_cache_size>268435456</mark_cache_size>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <remote_servers>
    <default>
      <shard><internal_replication>true</internal_replication>$replicas</shard>
    </default>
    <langfuse>
      <shard><internal_replication>true</internal_replication>$replicas</shard>
    </langfuse>
  </remote_servers>
  <zookeeper>
    <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
    <session_timeout_ms>10000</session_timeout_ms>
  </zookeeper>
  <macros><shard>01</shard><replica>$r</replica></macros>
  <!-- Every drill creates its tables ON CLUSTER: a full chaos run queues about a thousand tasks
       within the hour, which the sweep's one-hour pruning does not reach, and a restarted replica
       reads through the whole queue before it runs a new task. The server prunes past the cap
       every cleanup period, after the next task arrives. -->
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path><max_tasks_in_queue>100</max_tasks_in_queue><cleanup_delay_period>30</cleanup_delay_period></distributed_ddl>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>7500</flush_interval_milliseconds></query_log>
</yandex>
EOF
  cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <use_uncompressed_cache>0</use_uncompressed_cache>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
    </default>
  </quotas>
</yandex>
EOF
}

start_ch() {
  local r=$1
  ch_up "$r" && return
  port_free "$(ch_tcp "$r")" STACK_CH_TCP_BASE
  port_free "$(ch_http "$r")" STACK_CH_HTTP_BASE
  port_free "$(ch_inter "$r")" STACK_CH_INTERSERVER_BASE
  write_ch_config "$r"
  spawn "$r" "$(ch_dir "$r")/log/stdout.log" /usr/sbin/clickhouse-server --config-file="$(ch_dir "$r")/config.xml"
}

start_azurite() {
  azurite_up && return
  port_free "$AZURITE_PORT" STACK_AZURITE_PORT
  mkdir -p "$STACK_DIR/azurite"
  # Without --disableTelemetry Azurite spools telemetry under /tmp (Microsoft-AzureMonitor-*, MBs
  # a day) for an upload this machine cannot make.
  spawn azurite "$STACK_DIR/azurite/azurite.log" "$STACK_DIR/npm/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$STACK_DIR/azurite" \
    --skipApiVersionCheck --loose --silent --disableTelemetry
}

# start_ch_modern runs clickhouse-local (libchdb.so, through the launcher) as a server: 26.x
# clickhouse-local accepts SYSTEM START LISTEN, and the last query keeps it running by reading a
# FIFO that nothing writes until stop_ch_modern does. Its path holds Atomic databases that survive
# restarts. There is no interserver port and no Keeper: replicated tables open read-only, so
# replication stays on the 18.16 cluster. About one start in nine dies before it listens (a
# crash inside the library during start-up): it is started again, up to four times.
start_ch_modern() {
  ch_modern_up && return
  require_avx2
  [ -f "$CHDB_DIR/libchdb.so" ] && [ -x "$LAUNCHER" ] || install_ch_modern
  port_free "$CH_MODERN_TCP" STACK_CH_MODERN_TCP_PORT
  port_free "$CH_MODERN_HTTP" STACK_CH_MODERN_HTTP_PORT
  mkdir -p "$CH_MODERN_DIR/data"
  [ -p "$CH_MODERN_DIR/stop.fifo" ] || { rm -f "$CH_MODERN_DIR/stop.fifo"; mkfifo "$CH_MODERN_DIR/stop.fifo"; }
  # clickhouse-local keeps no query_log unless configured, and a server does by default:
  # tracevault reads it to check exports whose column types it cannot walk. Its system database
  # lives in memory, so after a restart the log's data directory from the last run blocks the
  # log's table from being created again (measured: no system.query_log after any restart);
  # the old log is only a log, and goes.
  rm -rf "$CH_MODERN_DIR/data/data/system"
  # A second disk, and a storage policy "second" that keeps a table on it alone, for tests of
  # tables outside the default disk.
  mkdir -p "$CH_MODERN_DIR/second"
  cat >"$CH_MODERN_DIR/config.xml" <<XML
<clickhouse>
  <query_log>
    <database>system</database>
    <table>query_log</table>
    <flush_interval_milliseconds>1000</flush_interval_milliseconds>
  </query_log>
  <storage_configuration>
    <disks><second><path>$CH_MODERN_DIR/second/</path></second></disks>
    <policies><second><volumes><main><disk>second</disk></main></volumes></second></policies>
  </storage_configuration>
</clickhouse>
XML
  local attempt
  for attempt in 1 2 3 4; do
    printf -- '--- ch-modern start, attempt %s, %s\n' "$attempt" "$(date -u +%FT%TZ)" >>"$(svc_log ch-modern)"
    TZ=UTC spawn ch-modern "$CH_MODERN_DIR/ch-modern.log" "$LAUNCHER" "$CHDB_DIR/libchdb.so" \
      --path="$CH_MODERN_DIR/data/" --config-file="$CH_MODERN_DIR/config.xml" --listen_host=127.0.0.1 --tcp_port="$CH_MODERN_TCP" --http_port="$CH_MODERN_HTTP" \
      --multiquery --query="SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; SELECT * FROM file('$CH_MODERN_DIR/stop.fifo', 'LineAsString') FORMAT Null"
    local pid deadline=$((SECONDS + 60))
    pid=$(cat "$STACK_DIR/ch-modern.pid")
    while alive "$pid" && ! ch_modern_up && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    ch_modern_up && return
    alive "$pid" && break # neither crashed nor ready: retrying would not help
    log "ch-modern exited during start-up (attempt $attempt); last lines of $(svc_log ch-modern):"
    tail -n 5 "$(svc_log ch-modern)" >&2 2>/dev/null || true
    # A listener that failed (port taken meanwhile) is no crash: starting again would not help.
    grep -q 'Address already in use' <(tail -n 5 "$(svc_log ch-modern)" 2>/dev/null) && break
  done
  stop_pid ch-modern
  die "ch-modern failed to start; see $(svc_log ch-modern)"
}

# stop_ch_modern ends the blocking query, which lets clickhouse-local finish and exit cleanly;
# a signal by pid only when it does not.
stop_ch_modern() {
  local pid
  pid=$(cat "$STACK_DIR/ch-modern.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && alive "$pid" && [ -p "$CH_MODERN_DIR/stop.fifo" ]; then
    timeout 5 bash -c 'echo stop >"$1"' _ "$CH_MODERN_DIR/stop.fifo" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  fi
  stop_pid ch-modern
}

# alive is kill -0 that counts a zombie as dead: servers outlive the `up` that spawned them, and
# an init that does not reap (as in some containers) leaves them as zombies after they exit.
alive() {
  kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_pid stops a recorded process: a signal (TERM unless given), wait while probing, KILL once
# after the grace period.
stop_pid() {
  local svc=$1 sig=${2:-TERM} grace=${3:-30} pidfile="$STACK_DIR/$1.pid" pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && alive "$pid"; then
    kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace)) killed=""
    while alive "$pid"; do
      if [ "$SECONDS" -ge "$deadline" ] && [ -z "$killed" ]; then
        [ "$svc" = azurite ] || log "$svc (pid $pid) still running ${grace}s after $sig; killing"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        killed=1
      fi
      sleep 0.2
    done
  fi
  rm -f "$pidfile"
}

start_svc() {
  case "$1" in
    pg) start_pg ;; zk) start_zk ;;
    ch1 | ch2 | ch3) start_zk && start_ch "$1" && wait_ready "$1" 90 ;;
    azurite) start_azurite && wait_ready azurite 60 ;;
    ch-modern) start_ch_modern ;;
    *) die "unknown service '$1' (pg, zk, ch1, ch2, ch3, azurite, ch-modern)" ;;
  esac
}

stop_svc() {
  case "$1" in
    pg) stop_pg ;; zk | ch1 | ch2 | ch3) stop_pid "$1" ;;
    # Azurite flushes and closes its service on INT but its process lingers: kill it after.
    azurite) stop_pid azurite INT 3 ;;
    ch-modern) stop_ch_modern ;;
    *) die "unknown service '$1' (pg, zk, ch1, ch2, ch3, azurite, ch-modern)" ;;
  esac
}

# ---------------------------------------------------------------- contract files

write_contract() {
  local native="" http="" data="" addrs="" haddrs=""
  for r in "${REPLICAS[@]}"; do
    native+="127.0.0.1:$(ch_tcp "$r") "
    http+="127.0.0.1:$(ch_http "$r") "
    data+="$(ch_dir "$r")/data/ "
    addrs+="\"127.0.0.1:$(ch_tcp "$r")\", "
    haddrs+="\"127.0.0.1:$(ch_http "$r")\", "
  done
  local dsn="postgres://tracevault:tracevault@127.0.0.1:$PG_PORT/langfuse?sslmode=disable"
  cat >"$STACK_DIR/env" <<EOF
# Written by internal/devstack/stack.sh: the local stack's addresses. Read by internal/devstack/env.go.
STACK_DIR="$STACK_DIR"
STACK_PG_DSN="$dsn"
STACK_CH_NATIVE="${native% }"
STACK_CH_HTTP="${http% }"
STACK_CH_DATA="${data% }"
STACK_CH_CLUSTER="default"
STACK_ZK="127.0.0.1:$ZK_PORT"
STACK_AZURE_CONNECTION_STRING="$AZURE_CONN"
STACK_AZURE_CONTAINER="tracevault"
STACK_WEB_LISTEN="127.0.0.1:$WEB_PORT"
STACK_CH_MODERN_NATIVE="127.0.0.1:$CH_MODERN_TCP"
STACK_CH_MODERN_HTTP="127.0.0.1:$CH_MODERN_HTTP"
STACK_CH_MODERN_DATA="$CH_MODERN_DIR/data/"
EOF
  local cluster='cluster = "default"'
  write_config "$STACK_DIR/tracevault.toml" "azblob://tracevault/stack" "connection_string = \"$AZURE_CONN\"" "$dsn" \
    "${addrs%, }" "${haddrs%, }" "$cluster" default clickhouse "$WEB_PORT"
  # make run's configuration: the whole restore point. PostgreSQL streams its changes for
  # point-in-time recovery, Langfuse's blob container (on Azurite, filled by demo seed) is backed
  # up with the databases, and a drill proves the first set right after it (the daemon runs a
  # caught-up drill once the caught-up backup is done), then every hour.
  write_config "$STACK_DIR/run.toml" "file://$STACK_DIR/repo" "" "$dsn" "${addrs%, }" "${haddrs%, }" "$cluster" default clickhouse "$WEB_PORT" \
    "# Point-in-time recovery: every committed change streamed into the repository (docs/pitr.md).
pitr = true" \
    "
# Restore the newest set into scratch databases, compare, drop them: the page's last proven restore.
[[jobs]]
name = \"stack-drill\"
schedule = \"0 30 * * * *\"
action = \"drill\"
timeout = \"30m\"
" \
    "
# Langfuse's blob container (raw events): demo seed writes the file each blob_storage_file_log row
# points at.
[blobs]
url = \"azblob://langfuse-events\"
connection_string = \"$AZURE_CONN\""
  # The single modern engine: no cluster, the modern demo schema in its own Atomic database, its
  # own repository, and the status page one port up so it can run beside run.toml's.
  write_config "$STACK_DIR/modern.toml" "file://$STACK_DIR/repo-modern" "" "$dsn" "\"127.0.0.1:$CH_MODERN_TCP\"" \
    "\"127.0.0.1:$CH_MODERN_HTTP\"" "" langfuse clickhouse-modern "$((WEB_PORT + 1))"
}

# write_config FILE URL AUTH DSN ADDRS HTTP_ADDRS CLUSTER DATABASE CH_MIGRATIONS WEB_PORT
#              [POSTGRES_EXTRA [JOBS_EXTRA [EXTRA]]]: the extras are TOML lines added to [postgres],
# after the backup job, and at the end.
write_config() {
  local file=$1 url=$2 auth=$3 dsn=$4 addrs=$5 haddrs=$6 cluster=$7 database=$8 chmigrations=$9 web=${10}
  local pgextra=${11:-} jobsextra=${12:-} extra=${13:-}
  cat >"$file" <<EOF
# tracevault configuration for the local stack, written by internal/devstack/stack.sh.
[storage]
url = "$url"
$auth

[postgres]
dsn = "$dsn"
$pgextra

[clickhouse]
addresses = [$addrs]
http_addresses = [$haddrs]
$cluster
databases = ["$database"]

[zookeeper]
servers = ["127.0.0.1:$ZK_PORT"]

# The demo schema as versioned migrations: make run applies them with \`tracevault migrate up\`.
[migrate]
clickhouse_dir = "$ROOT/demo/migrations/$chmigrations"
postgres_dir = "$ROOT/demo/migrations/postgres"
clickhouse_database = "$database"

# One snapshot set of every source configured here every 15 minutes.
[[jobs]]
name = "stack-backup"
schedule = "0 */15 * * * *"
action = "backup"
timeout = "30m"
$jobsextra

[[jobs]]
name = "stack-prune"
schedule = "0 0 * * * *"
action = "prune"

[retention]
keep_last = 10
min_age = "0s"

[web]
listen = "127.0.0.1:$web"
$extra
EOF
}

# ---------------------------------------------------------------- commands

save_ports() {
  cat >"$STACK_DIR/ports" <<EOF
STACK_PG_PORT="\${STACK_PG_PORT:-$PG_PORT}"
STACK_ZK_PORT="\${STACK_ZK_PORT:-$ZK_PORT}"
STACK_CH_TCP_BASE="\${STACK_CH_TCP_BASE:-$CH_TCP_BASE}"
STACK_CH_HTTP_BASE="\${STACK_CH_HTTP_BASE:-$CH_HTTP_BASE}"
STACK_CH_INTERSERVER_BASE="\${STACK_CH_INTERSERVER_BASE:-$CH_INTER_BASE}"
STACK_AZURITE_PORT="\${STACK_AZURITE_PORT:-$AZURITE_PORT}"
STACK_WEB_PORT="\${STACK_WEB_PORT:-$WEB_PORT}"
STACK_CH_MODERN_TCP_PORT="\${STACK_CH_MODERN_TCP_PORT:-$CH_MODERN_TCP}"
STACK_CH_MODERN_HTTP_PORT="\${STACK_CH_MODERN_HTTP_PORT:-$CH_MODERN_HTTP}"
EOF
}

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$STACK_DIR"
  save_ports
  install_missing
  start_pg
  start_zk
  # The three replicas start in parallel and are then awaited together.
  for r in "${REPLICAS[@]}"; do start_ch "$r"; done
  start_azurite
  # ch-modern starts (and is retried) while the replicas come up.
  start_ch_modern
  for r in "${REPLICAS[@]}"; do wait_ready "$r" 90; done
  wait_ready azurite 60
  write_contract
  cmd_status >&2
  log "stack ready in $((SECONDS - t0))s; contract in $STACK_DIR/env"
}

cmd_down() {
  # A stack shared by several developers' sessions (or a long benchmark) is held with
  # `touch .stack/hold`: make test's final down then leaves it up. Remove the file to stop it.
  if [ -f "$STACK_DIR/hold" ]; then
    log "not stopping: $STACK_DIR/hold exists (the stack is held for others); remove it to stop"
    return 0
  fi
  for svc in ch-modern azurite ch3 ch2 ch1 zk pg; do stop_svc "$svc"; done
  if [ "${1:-}" = --purge ]; then
    rm -rf "$STACK_DIR"
    log "stopped and removed $STACK_DIR"
  else
    log "stopped (data kept in $STACK_DIR; 'down --purge' removes it)"
  fi
}

cmd_status() {
  local bad=0
  for svc in "${SERVICES[@]}"; do
    if svc_up "$svc"; then
      printf '%-10s up    %s\n' "$svc" "$(svc_addr "$svc")"
    else
      printf '%-10s DOWN  %s\n' "$svc" "$(svc_addr "$svc")"
      bad=1
    fi
  done
  return $bad
}

case "${1:-}" in
  up) cmd_up ;;
  test-tools) install_test_tools ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  contract) mkdir -p "$STACK_DIR"; [ -f "$STACK_DIR/ports" ] || save_ports; write_contract ;;
  start) [ -n "${2:-}" ] || die "usage: stack.sh start SVC"; mkdir -p "$STACK_DIR"; start_svc "$2" ;;
  stop) [ -n "${2:-}" ] || die "usage: stack.sh stop SVC"; stop_svc "$2" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
