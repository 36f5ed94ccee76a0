package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/robfig/cron/v3"

	"github.com/tracevault/tracevault/snapshot/store"
)

// CronParser is the one schedule syntax tracevault accepts: 5 fields, or 6 with seconds first,
// plus descriptors (@hourly) and CRON_TZ= prefixes. The scheduler must parse with it too.
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var (
	jobActions     = []string{ActionBackup, ActionPrune, ActionVerify, ActionZKRecord, ActionDrill}
	catchUpModes   = []string{"once", "none"}
	exportModes    = []string{"logical", "freeze"}
	azureContainer = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)
)

func (c *checker) validate(cfg *Config) {
	c.storage(&cfg.Storage)
	c.jobs(cfg.Jobs)
	if cfg.Storage.AppendOnly {
		for i, j := range cfg.Jobs {
			if j.Action == ActionPrune {
				c.add(fmt.Sprintf("jobs[%d].action", i), "prune cannot run with [storage] append_only = true, whose credential must not delete; run prune as a separate identity, with a second configuration without append_only (the chart's prune CronJob)")
			}
		}
	}
	if cfg.Drill.Timeout <= 0 {
		c.add("drill.timeout", "must be positive, e.g. \"1h\"")
	}
	if cfg.Verify.Sample != "" {
		if _, err := store.ParseSample(cfg.Verify.Sample); err != nil {
			c.add("verify.sample", "%v; or leave it empty to check only that every object exists with its size", err)
		}
	}
	needs := func(source string) bool {
		for _, j := range cfg.Jobs {
			if j.BacksUp(source) || (source == SourceZooKeeper && j.Action == ActionZKRecord) {
				return true
			}
		}
		return false
	}
	c.postgres(&cfg.Postgres, needs(SourcePostgres))
	c.clickhouse(&cfg.ClickHouse, needs(SourceClickHouse))
	c.zookeeper(&cfg.ZooKeeper, needs(SourceZooKeeper))
	// The blob container is optional: a job backing up "all" sources covers it only once
	// configured, and only a job naming blobs requires it.
	namesBlobs := false
	for _, j := range cfg.Jobs {
		namesBlobs = namesBlobs || (len(j.Only) > 0 && j.BacksUp(SourceBlobs))
	}
	c.blobs(&cfg.Blobs, namesBlobs)
	c.langfuse(&cfg.Langfuse, cfg.Blobs.URL)
	c.retention(&cfg.Retention)
	// Port 0 is any free port: serve logs the one it got ("serving", listen=...).
	if _, port, err := net.SplitHostPort(cfg.Web.Listen); err != nil || port != "0" {
		if err := checkHostPort(cfg.Web.Listen); err != nil {
			c.add("web.listen", "%v", err)
		}
	}
	c.web(&cfg.Web)
}

func (c *checker) web(w *Web) {
	if s := w.SecureCookies; s != "" && s != "auto" && s != "always" {
		c.add("web.secure_cookies", "%q is not one of \"auto\" (Secure over TLS, or when a trusted proxy says https) or \"always\" (behind a TLS-terminating proxy)", w.SecureCookies)
	}
	for i, p := range w.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			c.add(fmt.Sprintf("web.trusted_proxies[%d]", i), "%q is not a CIDR such as \"10.0.0.0/8\" or \"192.0.2.7/32\"", p)
		}
	}
}

func (c *checker) storage(s *Storage) {
	if s.URL == "" {
		c.add("storage.url", "required; write file:///absolute/path or azblob://container[/prefix]")
	} else if c.containerURL("storage", s.URL) {
		c.azureAuth("storage", s.AzureCredentials)
	}
	if s.BlockSize < 1<<20 || s.BlockSize > 4000<<20 {
		c.add("storage.block_size", "%d bytes is out of range; Azure blocks must be between 1MiB and 4000MiB", s.BlockSize)
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		c.add("storage.concurrency", "%d is out of range 1..64", s.Concurrency)
	}
	if s.CompressionLevel < 1 || s.CompressionLevel > 22 {
		c.add("storage.compression_level", "%d is out of range; zstd levels are 1 (fastest) to 22", s.CompressionLevel)
	}
	for i, r := range s.Encryption.Recipients {
		if _, err := age.ParseX25519Recipient(r); err != nil {
			c.add(fmt.Sprintf("storage.encryption.recipients[%d]", i), "%q is not an age X25519 recipient (age1...): %v", r, err)
		}
	}
	c.encryption(&s.Encryption)
}

// encryption applies the store's rules (store.Repository.setupEncryption says why): a passphrase
// alone, or recipients with the identity_file that unlocks them.
func (c *checker) encryption(e *Encryption) {
	const fix = "set recipients and identity_file, or passphrase alone"
	switch hasR, hasI, hasP := len(e.Recipients) > 0, e.IdentityFile != "", e.Passphrase != ""; {
	case hasP && (hasR || hasI):
		c.add("storage.encryption.passphrase", "a passphrase goes alone, without recipients or identity_file; %s", fix)
	case hasR && !hasI:
		c.add("storage.encryption.identity_file", "required with recipients: tracevault reads earlier manifests (incremental backups, prune) and authenticates the manifests it writes, which takes the identity; write-only set-ups are not supported")
	case hasI && !hasR:
		c.add("storage.encryption.recipients", "required with identity_file, or tracevault would write unencrypted objects; 'age-keygen -y %s' prints them", e.IdentityFile)
	}
}

// containerURL checks the url key of [section]: file:///dir or azblob://container[/prefix]. It
// reports whether the url is an Azure one, whose credentials are checked next.
func (c *checker) containerURL(section, raw string) bool {
	key := section + ".url"
	switch u, err := url.Parse(raw); {
	case err != nil:
		c.add(key, "%q is not a URL; write file:///absolute/path or azblob://container[/prefix]", raw)
	case u.Scheme == "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || u.Path == "/" {
			c.add(key, "%q: a file URL needs three slashes and an absolute directory, e.g. file:///var/lib/tracevault/repo", raw)
		}
	case u.Scheme == "azblob":
		if !azureContainer.MatchString(u.Host) {
			c.add(key, "%q: %q is not a valid Azure container name (3-63 lowercase letters, digits and single hyphens)", raw, u.Host)
		}
		return true
	default:
		c.add(key, "%q: unsupported scheme %q; write file:///absolute/path or azblob://container[/prefix]", raw, u.Scheme)
	}
	return false
}

// azureAuth checks the Azure credential keys [storage] and [blobs] share.
func (c *checker) azureAuth(section string, a AzureCredentials) {
	conn, key, sas, account, endpoint := a.ConnectionString, a.AccountKey, a.SASToken, a.AccountName, a.Endpoint
	methods := 0
	for _, set := range []bool{conn != "", key != "", sas != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		c.add(section+".connection_string", "give only one of connection_string, account_key or sas_token")
	}
	if (key != "" || sas != "" || methods == 0) && account == "" && conn == "" && endpoint == "" {
		c.add(section+".account_name", "required for azblob:// unless connection_string or endpoint is given")
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.add(section+".endpoint", "%q is not an http(s) URL, e.g. http://127.0.0.1:10000/devstoreaccount1", endpoint)
		}
	}
}

// blobs checks [blobs], the Langfuse blob container.
func (c *checker) blobs(b *Blobs, required bool) {
	if b.URL == "" {
		if required {
			c.add("blobs.url", "required because a backup job names blobs in only: azblob://container[/prefix] or file:///dir, Langfuse's blob container")
		}
	} else if c.containerURL("blobs", b.URL) {
		c.azureAuth("blobs", b.AzureCredentials)
	}
	if b.Workers < 1 || b.Workers > 64 {
		c.add("blobs.workers", "%d is out of range 1..64", b.Workers)
	}
	if b.PackSize < 1<<20 || b.PackSize > 1<<30 {
		c.add("blobs.pack_size", "%d bytes is out of range 1MiB..1GiB", b.PackSize)
	}
}

// langfuse checks [langfuse], the instance replay-events sends raw events back to.
func (c *checker) langfuse(l *Langfuse, blobsURL string) {
	if l.URL != "" {
		if u, err := url.Parse(l.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.add("langfuse.url", "%q is not an http(s) URL; write Langfuse's base URL, e.g. https://langfuse.example.com", l.URL)
		}
		if l.AdminAPIKey == "" {
			c.add("langfuse.admin_api_key", "required with langfuse.url: the instance's ADMIN_API_KEY, e.g. \"env:LANGFUSE_ADMIN_API_KEY\"")
		}
		if blobsURL == "" {
			c.add("blobs.url", "required because langfuse.url is set: replay-events lists Langfuse's raw events in that container")
		}
	}
	if strings.HasPrefix(l.EventsPrefix, "/") || strings.Contains(l.EventsPrefix, "..") {
		c.add("langfuse.events_prefix", "%q must be relative to the blobs.url container, e.g. \"events/\"", l.EventsPrefix)
	}
	if l.EventsRetention < 0 {
		c.add("langfuse.events_retention", "must not be negative; \"0s\" means the container keeps events forever")
	}
	if l.ReplayMargin < 0 || l.ReplayMargin.D() > 24*time.Hour {
		c.add("langfuse.replay_margin", "%s is out of range 0s..24h", l.ReplayMargin.D())
	}
	if l.ReplayBatch < 1 || l.ReplayBatch > 1000 {
		c.add("langfuse.replay_batch", "%d is out of range 1..1000, the most keys Langfuse's replay route takes at once", l.ReplayBatch)
	}
	if l.ReplayKeysPerSecond < 0 {
		c.add("langfuse.replay_keys_per_second", "must not be negative; 0 means unpaced")
	}
	if l.ReplayRetries < 0 || l.ReplayRetries > 20 {
		c.add("langfuse.replay_retries", "%d is out of range 0..20", l.ReplayRetries)
	}
}

func (c *checker) jobs(jobs []Job) {
	seen := map[string]int{}
	for i, j := range jobs {
		key := func(k string) string { return fmt.Sprintf("jobs[%d].%s", i, k) }
		switch prev, dup := seen[j.Name]; {
		case j.Name == "":
			c.add(key("name"), "required: every job needs a unique name")
		case dup:
			c.add(key("name"), "%q is already the name of jobs[%d]", j.Name, prev)
		}
		seen[j.Name] = i
		if j.Schedule == "" {
			c.add(key("schedule"), "required: a cron expression such as \"0 3 * * *\"")
		} else if _, err := ParseSchedule(j.Schedule); err != nil {
			c.add(key("schedule"), "bad cron expression %q: %v; write 5 fields (min hour dom month dow), 6 with seconds first, or @hourly/@daily", j.Schedule, err)
		}
		if !oneOf(j.Action, jobActions) {
			c.add(key("action"), "%q is not an action; allowed: %s", j.Action, strings.Join(jobActions, ", "))
		}
		for k, src := range j.Only {
			if !oneOf(src, Sources) {
				c.add(fmt.Sprintf("jobs[%d].only[%d]", i, k), "%q is not a source; allowed: %s", src, strings.Join(Sources, ", "))
			}
		}
		if len(j.Only) > 0 && j.Action != ActionBackup {
			c.add(key("only"), "only applies to action = \"backup\"")
		}
		if j.Timeout <= 0 {
			c.add(key("timeout"), "must be positive, e.g. \"2h\"")
		}
		if j.Jitter < 0 {
			c.add(key("jitter"), "must not be negative")
		}
		if !oneOf(j.CatchUp, catchUpModes) {
			c.add(key("catch_up"), "%q is not allowed; use \"once\" or \"none\"", j.CatchUp)
		}
	}
}

func (c *checker) postgres(p *Postgres, required bool) {
	if p.DSN == "" {
		if required {
			c.add("postgres.dsn", "required because a backup job includes postgres; a libpq URL such as postgres://user@host:5432/langfuse")
		}
	} else if _, err := pgconn.ParseConfig(p.DSN.Reveal()); err != nil {
		// pgconn's message can echo the DSN, password included, so it is not repeated here.
		c.add("postgres.dsn", "not a valid libpq URL or keyword/value string; write postgres://user:password@host:5432/dbname?sslmode=require")
	}
	if p.Parallel < 1 || p.Parallel > 64 {
		c.add("postgres.parallel", "%d is out of range 1..64", p.Parallel)
	}
	if p.RestoreMaintenanceWorkMem < 1<<20 || p.RestoreMaintenanceWorkMem > 1<<40 {
		c.add("postgres.restore_maintenance_work_mem", "%d bytes is out of range 1MiB..1TiB", p.RestoreMaintenanceWorkMem)
	}
	if p.RestoreSplitTableSize < 0 || p.RestoreSplitTableSize > 0 && p.RestoreSplitTableSize < 1<<20 {
		c.add("postgres.restore_split_table_size", "%d bytes: write 0 (load every table on one connection) or at least 1MiB", p.RestoreSplitTableSize)
	}
	if p.RestoreParallelMaintenanceWorkers < 0 || p.RestoreParallelMaintenanceWorkers > 64 {
		c.add("postgres.restore_parallel_maintenance_workers", "%d is out of range 0..64 (0 leaves the server's max_parallel_maintenance_workers)", p.RestoreParallelMaintenanceWorkers)
	}
	if p.PITR && p.DSN == "" {
		c.add("postgres.pitr", "needs [postgres] dsn: the server whose changes are streamed")
	}
	if p.PITR && p.DataOnly {
		c.add("postgres.pitr", "needs data_only = false: a point-in-time restore goes into a new database, so its base needs pg_dump's schema")
	}
	if p.PITRSlot != "" && !slotName.MatchString(p.PITRSlot) {
		c.add("postgres.pitr_slot", "%q: a replication slot name is lower-case letters, digits and underscores, at most 63", p.PITRSlot)
	}
	if p.PITRSegmentInterval < 0 || p.PITRSegmentMiB < 0 || p.PITRWarnRetainedMiB < 0 {
		c.add("postgres.pitr_segment_interval", "pitr_segment_interval, pitr_segment_mib and pitr_warn_retained_mib cannot be negative (0 takes the default)")
	}
	if p.PITRChainWithBackup && !p.PITR {
		c.add("postgres.pitr_chain_with_backup", "needs pitr = true: it starts point-in-time chains")
	}
	if p.PITRChainInterval < 0 || (p.PITRChainInterval > 0 && time.Duration(p.PITRChainInterval) < time.Minute) {
		c.add("postgres.pitr_chain_interval", "%s: at least 1m (each new chain takes a new base; 0 takes the default, 24h)", time.Duration(p.PITRChainInterval))
	}
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (c *checker) clickhouse(ch *ClickHouse, required bool) {
	if len(ch.Addresses) == 0 && required {
		c.add("clickhouse.addresses", "required because a backup job includes clickhouse: the native host:port of every replica")
	}
	for i, a := range ch.Addresses {
		if err := checkHostPort(a); err != nil {
			c.add(fmt.Sprintf("clickhouse.addresses[%d]", i), "%v", err)
		}
	}
	for i, a := range ch.HTTPAddresses {
		if err := checkHostPort(a); err != nil {
			c.add(fmt.Sprintf("clickhouse.http_addresses[%d]", i), "%v", err)
		}
	}
	if len(ch.HTTPAddresses) > 0 && len(ch.HTTPAddresses) != len(ch.Addresses) {
		c.add("clickhouse.http_addresses", "lists %d addresses but addresses lists %d; give the HTTP address of every replica, in the same order", len(ch.HTTPAddresses), len(ch.Addresses))
	}
	if required && ch.Mode == "logical" && len(ch.HTTPAddresses) == 0 {
		c.add("clickhouse.http_addresses", "required in logical mode: the HTTP host:port of every replica (default port 8123)")
	}
	if !oneOf(ch.Mode, exportModes) {
		c.add("clickhouse.mode", "%q is not a mode; allowed: logical, freeze", ch.Mode)
	}
	if ch.Parallel < 1 || ch.Parallel > 64 {
		c.add("clickhouse.parallel", "%d is out of range 1..64", ch.Parallel)
	}
	c.globs("clickhouse.databases", ch.Databases)
	c.globs("clickhouse.include_tables", ch.IncludeTables)
	c.globs("clickhouse.exclude_tables", ch.ExcludeTables)
	if ch.DialTimeout <= 0 || ch.QueryTimeout <= 0 || ch.StallTimeout <= 0 {
		c.add("clickhouse.dial_timeout", "timeouts (dial_timeout, query_timeout, stall_timeout) must be positive")
	}
}

func (c *checker) zookeeper(z *ZooKeeper, required bool) {
	if len(z.Servers) == 0 && required {
		c.add("zookeeper.servers", "required because a job records zookeeper: host:port of each ensemble member")
	}
	for i, s := range z.Servers {
		if err := checkHostPort(s); err != nil {
			c.add(fmt.Sprintf("zookeeper.servers[%d]", i), "%v", err)
		}
	}
	if id := z.Identity.Reveal(); id != "" && !envRef.MatchString(id) {
		if user, _, ok := strings.Cut(id, ":"); !ok || user == "" {
			c.add("zookeeper.identity", "must be \"user:password\" (the digest scheme ClickHouse's <zookeeper><identity> uses)")
		}
	}
	for i, r := range z.Roots {
		if !strings.HasPrefix(r, "/") {
			c.add(fmt.Sprintf("zookeeper.roots[%d]", i), "%q must be an absolute znode path such as /clickhouse", r)
		}
	}
	c.globs("zookeeper.exclude", z.Exclude)
	if z.WarnZnodeCount < 0 || z.WarnOutstandingRequests < 0 {
		c.add("zookeeper.warn_znode_count", "thresholds must be 0 (off) or more")
	}
	if z.SessionTimeout.D().Seconds() < 1 {
		c.add("zookeeper.session_timeout", "%s is too short; use at least 1s", z.SessionTimeout.D())
	}
}

func (c *checker) retention(r *Retention) {
	for key, v := range map[string]int{"keep_last": r.KeepLast, "keep_hourly": r.KeepHourly, "keep_daily": r.KeepDaily, "keep_weekly": r.KeepWeekly, "keep_monthly": r.KeepMonthly} {
		if v < 0 {
			c.add("retention."+key, "%d must be 0 (rule off) or more", v)
		}
	}
	if r.MinAge < 0 {
		c.add("retention.min_age", "must not be negative")
	}
	if r.KeepLast <= 0 && r.KeepHourly <= 0 && r.KeepDaily <= 0 && r.KeepWeekly <= 0 && r.KeepMonthly <= 0 {
		c.add("retention.keep_last", "every keep rule is 0, so prune would forget every snapshot; set at least one of keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly")
	}
}

func (c *checker) globs(key string, globs []string) {
	for i, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			c.add(fmt.Sprintf("%s[%d]", key, i), "%q is not a valid glob: %v", g, err)
		}
	}
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q must be a number 1..65535", s, port)
	}
	return nil
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}
