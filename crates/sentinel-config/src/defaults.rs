//! The embedded default configuration, the bottom layer every other layer is merged onto.
//! Its shape is also the schema: a key that is not here (or in a list element's known keys,
//! see `schema`) is unknown, and the JSON type of each leaf decides how environment strings are read.

use crate::error::ConfigError;
use serde_json::Value;

/// The defaults, as a commented `sentinel.yml` an operator can start from.
pub const DEFAULT_YAML: &str = r#"# Sentinel configuration. Every key is optional; these are the defaults.
data_dir: ./data
api:
  listen: 127.0.0.1:8000
  max_body_bytes: 1048576          # 1..=64MiB
  request_timeout: 10s
  allow_insecure_no_auth: false    # never true outside a lab
  tls_terminated_by_proxy: false   # set once TLS is terminated in front of the API
  tls: null                        # serve the API and dashboard over TLS (HTTP/1.1, HSTS, the files re-read when they change), e.g.
                                   #   tls:
                                   #     cert: /etc/sentinel/tls/cert.pem   # PEM chain, the server's certificate first
                                   #     key: /etc/sentinel/tls/key.pem     # its PEM private key, mode 0600 (group/others readable: refused)
                                   #     min_version: "1.2"                 # or "1.3"
                                   #   gRPC (api.grpc_listen) stays plaintext: keep it on loopback
  max_connections: 1024
  grpc_listen: null                # the gRPC API's address (e.g. 127.0.0.1:50051); null: no gRPC API
  jwt: null                        # JWT bearer tokens: {issuer, audience, hs256_secret_file, jwks_file, role_claim: sentinel_role, leeway: 30s (<= 5m)}
  max_page_bytes: 1048576          # byte budget of one list answer, 4096..=64MiB
  rate_limit:                      # GCRA limits (429 + Retry-After); a limit set to `off` is off
    per_ip: { rate: 50/s, burst: 100 }   # per client address (IPv6 per /64), checked before the key
    per_key: { rate: 1000/s, burst: 2000 } # per API key (one key cannot take the whole API)
    exempt: ["127.0.0.0/8", "::1/128"]  # never limited per address (a local proxy or the CLI: every client behind it shares its address); their keys still are
    max_tracked: 100000            # addresses (and keys) tracked at once (1..=10000000); more share one overflow bucket
  webhooks:                        # signed webhook routes: a route exists only with its secret
    github: null                   # { secret_file: /path } or { secret: ... } (X-Hub-Signature-256)
    gitea: null                    # same shape (X-Gitea-Signature)
    generic: null                  # same shape (X-Sentinel-Timestamp + X-Sentinel-Signature over "<ts>.<body>")
    replay_window: 5m              # generic timestamps must be this close to now; delivery ids are remembered this long (max 24h)
    max_deliveries: 100000         # delivery ids remembered at once (1..=10000000); when full, new deliveries get 503
  edge:                            # the connection server (open connections: at most max_connections, below the open-files limit)
    header_read_timeout: 10s       # a request head must arrive within this (100ms..=5m); also bounds a kept-alive wait
    idle_timeout: 30s              # a connection with no request in flight this long is closed (100ms..=1h)
    fd_reserve: 128                # descriptors kept free for the store, logs and outgoing calls (16..=100000)
    stream_min_bytes: 1024         # NDJSON streams send at least this many bytes ...
    stream_window: 10s             # ... per this window, or are closed (what they sent is kept)
    max_streams: 64                # NDJSON streams at once (1..=100000)
  stream:                          # the live WebSocket stream GET /v1/stream (and the dashboard's live feed)
    max_streams: 64                # streams open at once (1..=100000); one more is refused with 503
    send_timeout: 10s              # a frame not sent within this (the client stopped reading) closes the stream with code 4008 (100ms..=5m)
    ping_interval: 20s             # ping each stream this often; a client that missed the previous pong is closed (1s..=1h)
  ui:                              # the dashboard under /ui/ (log in with an API key or JWT)
    enabled: true
    session_ttl: 12h               # a session ends this long after login whatever happens (1m..=30d; a JWT's exp ends it sooner)
    idle_timeout: 1h               # ... or after this long unused (1m..=session_ttl)
    max_sessions: 10000            # sessions held at once (1..=1000000); past it the least recently used ends
    secure_cookie: false           # true behind a TLS-terminating proxy (Secure, __Host- cookie); on by itself when the API serves TLS
    public_origins: []             # origins a Host-rewriting proxy serves the dashboard at, e.g. [https://sentinel.example.org]; form posts and the live feed from them are accepted (at most 16)
pipeline:
  queue_capacity: 1024             # 1..=1000000
  defend_timeout: 2s
store:
  batch_size: 256                  # 1..=10000
  flush_interval: 50ms
  event_retention: 7d
  max_events: 1000000              # >= 1000
  sync: normal                     # normal: survives a killed process; full: also power loss (fsync per commit)
  url: null                        # null: SQLite in <data_dir>/sentinel.db; postgres://user:password@host:5432/db: PostgreSQL (credentials masked when shown)
audit:
  origin: null                     # names the log and its signing key; null: a new log is named sentinel/<hostname>, an existing one keeps its key's name
  checkpoint_every: 1000           # records between signed checkpoints (1..=1000000)
  checkpoint_interval: 10s         # ... or this long, whichever comes first
  segment_bytes: 67108864          # roll to a new segment file at this size (1MiB..=1GiB)
  witness_url: null                # POST each signed checkpoint here (https, or http on loopback)
  witness_secret: null             # HMAC-SHA256 key signing those requests (required with witness_url)
logging:
  level: info                      # trace|debug|info|warn|error
  redact_keys: []                  # extra key fragments whose values are masked
  chain_every: 1000                # lines per block of the log hash chain (`sentinel audit verify-logs`); 0 = off
detect:
  heuristic:
    min_score: 20                  # 1..=100, alert threshold
    failed_logins_threshold: 5
    request_rate_threshold: 120    # requests per minute
    bytes_out_threshold: 50000000
    bad_ports: [23, 2323, 4444, 5555, 6667, 31337]
  scenarios:
    builtin: true                  # the default scenario set (ssh, http, mail brute force and probing)
    dir: null                      # a directory of more scenario files (*.yaml)
    ipv6_prefix: null              # count IPv6 sources per /N (1..=128, e.g. 64); null = per address
    max_keys: 250000               # per-scenario state cap; the stalest keys are evicted past it
    whitelist: []                  # CIDRs, addresses or hostnames never counted
    define: []                     # scenarios written inline (same format as the files in `dir`)
  falco:                           # Falco's alerts (sources with format: falco): one alert each, about the container (or a host event's remote address)
    ignore_rules: []               # Falco rule names (as Falco writes them) that raise no alert
respond:
  nft_table: sentinel              # table `inet <name>`, owned by Sentinel; nothing else is touched
  nft_hooks: [input, forward]      # plus a prerouting chain that also catches Docker-published ports
  quarantine_dir: null             # null: <data_dir>/quarantine
  quarantine_roots: []             # files outside these directories are never quarantined
  docker_quarantine_network: null  # attach isolated containers here (null: fully disconnected)
  docker_protect: []               # containers never isolated
  escalation_factor: 2             # repeat offenders: TTL x factor per earlier action (1 = off)
  escalation_window: 24h
  escalation_max_ttl: 7d
  actuators:                       # mode: observe | enforce | null (follow policy.mode); max_live: blast radius
    block_ip: { mode: null, max_live: 1000000 }
    rate_limit: { mode: null, max_live: 10000 }
    redirect_to_honeypot: { mode: null, max_live: 1000 }
    isolate_container: { mode: null, max_live: 10 }
    quarantine_file: { mode: null, max_live: 1000 }
intel:                             # investigation: what others know about an alert's source
  offline: false                   # true: never ask a remote provider (also the case while no key is set)
  deadline: 1500ms                 # the longest one investigation takes (< pipeline.defend_timeout); late providers become uncertainty
  concurrency: 64                  # investigations in flight at once (1..=4096)
  abuseipdb:
    key: null                      # API key (or SENTINEL__INTEL__ABUSEIPDB__KEY); null: provider off
    key_file: null                 # ... or a file holding the key, read at start-up (not with key)
    base_url: https://api.abuseipdb.com  # https; http only to a loopback host
    timeout: 5s                    # one attempt
    rate: { requests: 1000, per: 1d, burst: 10 }  # the plan's quota (free: 1,000 checks a day); burst <= requests
    ttl: 6h                        # how long an answer is cached
    negative_ttl: 1h               # ... and a "knows nothing" answer (<= ttl)
    max_age_days: 90               # reports older than this are not counted (1..=365)
  virustotal:
    key: null                      # or SENTINEL__INTEL__VIRUSTOTAL__KEY
    key_file: null
    base_url: https://www.virustotal.com
    timeout: 5s
    rate: { requests: 4, per: 1m, burst: 4 }  # the public API: 4 lookups a minute
    ttl: 1d
    negative_ttl: 1h
  otx:
    key: null                      # or SENTINEL__INTEL__OTX__KEY
    key_file: null
    base_url: https://otx.alienvault.com
    timeout: 5s
    rate: { requests: 10000, per: 1h, burst: 20 }  # 10,000 requests an hour
    ttl: 6h
    negative_ttl: 1h
  retry: { attempts: 3, base: 200ms, max: 5s }  # per provider and investigation (attempts 1..=10); backoff with jitter, Retry-After honoured
  breaker: { failures: 5, cooldown: 30s }  # opens after this many failures in a row; one trial request after cooldown
  cache:
    max_entries: 100000            # answers kept in memory
    redis: null                    # redis:// URL of a cache shared by every node (no TLS: rediss:// is refused)
    prefix: "sentinel:intel:"      # of every Redis key
  feeds: []                        # at most 64, e.g. - { name: firehol_level1, path: /var/lib/sentinel/firehol_level1.netset, format: list, verdict: malicious, score: 90 }
                                   #   name: a-z 0-9 _ -; format: list | spamhaus_json | tor_exit_addresses | csv; verdict: malicious | suspicious | benign; score: 0..=100
                                   #   format csv also takes csv: { ip_column: ip, score_column: null, reason_column: null, delimiter: ",", header: true }
  feed_poll: 30s                   # how often feed files are checked for changes
  assets: []                       # e.g. - { name: shop, targets: [nginx, "shop-*"], nets: [198.51.100.0/24], criticality: high }
  default_criticality: medium      # of a target no asset names: low | medium | high | critical
  history_window: 1d               # how far back the source's history in the store counts
notify:                            # where notices (alerts, failed actions, crashes, errors) are sent; with no route they go to the log only
  channels: {}                     # by name (a-z 0-9 _ -), e.g.
                                   #   ops:   { type: webhook, url: https://hooks.example/x, secret_file: /run/secrets/hook, timeout: 10s }  # JSON, HMAC-SHA256 signed
                                   #   mail:  { type: smtp, host: mail.example.org, port: 587, security: starttls, username: u, password_file: /run/secrets/smtp, from: sentinel@example.org, to: [ops@example.org], ca_file: null, timeout: 30s }
                                   #   chat:  { type: matrix, homeserver: https://matrix.example.org, room: "!abc:example.org", access_token_file: /run/secrets/matrix }
                                   #   slack: { type: slack, url_file: /run/secrets/slack }  # the URL is the credential
                                   #   log:   { type: log }
                                   #   a secret is given as a value or as <key>_file (read at start-up), not both; security: starttls | tls | none (none: loopback relays)
  routes: []                       # e.g. - { kinds: [alert, action_failed, crash, error], min_severity: high, channels: [ops, mail], group_wait: 10s, dedup_window: 5m, throttle: { max: 20, per: 1m } }
                                   #   kinds: alert action_applied action_failed action_reverted error crash audit_checkpoint digest manual test ([]: every kind)
  retry: { base: 1s, factor: 2, cap: 5m, max_attempts: 12 }  # a failed delivery is retried base x factor^n (capped), then kept as a dead letter
  digest: null                     # a daily summary, e.g. { at: "08:00", channels: [mail], top: 10 } (UTC)
  keep_delivered: 7d               # delivered notices are kept this long (>= every route's dedup_window)
  max_pending: 10000               # POST /v1/notify answers 429 while this many rows wait in the outbox
supervise: null                    # processes and containers to keep running, e.g.
                                   #   children: [{ name: web, container: { name: web1 }, probe: { docker_health: true } }]
                                   #   (the shape of supervise.yml, without its data_dir and notify)
sources: []                        # e.g. - { type: file, paths: [/var/log/auth.log], format: sshd }
                                   #   or - { type: fail2ban_jails, dir: /etc/fail2ban }
policy:
  mode: observe                    # observe|enforce
  allowlist: []                    # CIDRs or plain IPs never acted on
  default_ttl: 1h
  max_ttl: 30d
  rules:                           # first match wins; none acts below medium confidence (an alert nobody could corroborate is only recorded)
    - { name: isolate_container_threat, scenario: container_runtime_threat, severity: [critical], risk: [high, medium], confidence: [high, medium], actions: [{kind: isolate_container, ttl: 1h}] }
    - { severity: [critical], risk: [high, medium], confidence: [high, medium], actions: [{kind: block_ip, ttl: 24h}] }
    - { severity: [critical, high], risk: [high], confidence: [high, medium], actions: [{kind: block_ip, ttl: 4h}] }
    - { severity: [high], risk: [medium, high], confidence: [medium, high], actions: [{kind: rate_limit, ttl: 1h, params: {rate_per_sec: 10}}] }
    - { severity: [medium], risk: [high], confidence: [medium, high], actions: [{kind: rate_limit, ttl: 30m, params: {rate_per_sec: 20}}] }
    - { severity: [medium, low, info], risk: [low, medium, high], confidence: [low, medium, high], actions: [] }
  risk_bands: { medium: 40, high: 70 }
  confidence_bands: { medium: 0.5, high: 0.8 }
tracing:                           # OpenTelemetry: each trace's spans (the HTTP request, then one per pipeline stage) sent over OTLP/HTTP
  otlp_endpoint: null              # the collector, e.g. http://127.0.0.1:4318 (/v1/traces is appended); null: no export
  service_name: sentinel           # service.name of the spans
  sample: 1.0                      # share of traces exported, 0.0..=1.0
  queue: 2048                      # spans waiting for export at most (1..=1000000); beyond it they are dropped and counted, never waited for
bus: memory                        # memory: every stage in one process; redis://[user:password@]host:6379/0 (or `redis`: redis://127.0.0.1:6379/0): processes started with `sentinel run --role …` share Redis Streams (also BUS=memory|redis|redis://…)
node: null                         # this node's name in the fleet (plans scoped to a host name it); null: the hostname
fleet:                             # the Redis bus (bus: redis://…)
  prefix: "sentinel:"              # before every key (streams, act-once marks, heartbeats, expiry leases)
  stream_maxlen: 100000            # entries each stream keeps, about (1000..=100000000)
  claim_idle: 30s                  # a message unacknowledged this long (its consumer died) goes to a live consumer of the group (1s..=1h)
  buffer: 10000                    # messages kept while Redis is away (1..=10000000); more are refused and counted
  max_in_flight: 256               # unacknowledged messages one consuming link holds (1..=100000)
  done_keep: 24h                   # how long each group remembers an alert as handled (its act-once mark in Redis, ~120 bytes per alert and group) (1m..=30d)
  heartbeat: 5s                    # each node's heartbeat (1s..=5m); three missed and `sentinel cluster status` shows it gone
  secret: null                     # the HMAC-SHA256 key every bus message is signed with and checked against (>= 16 characters; or secret_file: /run/secrets/fleet); the same on every node
  secret_file: null                # null on both: messages are unsigned, and anyone who can write to the Redis can have every responder act (warned)
"#;

/// The defaults as a JSON tree.
pub(crate) fn defaults_tree() -> Result<Value, ConfigError> {
    serde_norway::from_str(DEFAULT_YAML)
        .map_err(|e| ConfigError::new("(defaults)", format!("built-in defaults do not parse: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_to_a_mapping() {
        let tree = defaults_tree().unwrap();
        assert_eq!(tree["api"]["listen"], "127.0.0.1:8000");
        assert_eq!(tree["policy"]["rules"].as_array().unwrap().len(), 6);
        assert!(tree["policy"]["confidence_bands"]["high"].is_f64());
    }
}
