package config

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Notice is one message about the configuration for the caller to log once,
// at Level. Warnings (unknown keys, ignored Kafka features) are slog.LevelWarn;
// settings that a Kafka image needs and kbroker does not (KRaft, ZooKeeper)
// are Info; image-only environment variables are Debug.
type Notice struct {
	Level slog.Level
	Msg   string
}

// Prefixes of the environment variables Kafka's images turn into settings.
const (
	envPrefix        = "KAFKA_"     // apache/kafka, confluentinc/cp-kafka
	envPrefixBitnami = "KAFKA_CFG_" // bitnami/kafka
	envClusterID     = "CLUSTER_ID" // apache/kafka and cp-kafka in KRaft mode
	envSourcePrefix  = "env "       // setting.source of environment settings
)

// envImageVars are KAFKA_* variables that configure an image's launcher
// scripts (the JVM, log4j, JMX, bitnami's setup script) rather than the
// broker. They are ignored with a Debug notice.
var envImageVars = toSet(
	"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS",
	"KAFKA_VERSION", "KAFKA_HOME", "KAFKA_DEBUG", "KAFKA_DEBUG_SUSPEND_FLAG",
	"KAFKA_ENABLE_KRAFT", "KAFKA_SKIP_KRAFT_STORAGE_INIT", "KAFKA_MOUNTED_CONF_DIR",
	"KAFKA_CONF_FILE", "KAFKA_BASE_DIR", "KAFKA_VOLUME_DIR", "KAFKA_DATA_DIR",
	"KAFKA_INITSCRIPTS_DIR", "KAFKA_DAEMON_USER", "KAFKA_DAEMON_GROUP",
	"KAFKA_CERTIFICATE_PASSWORD", "KAFKA_CLIENT_USERS", "KAFKA_CLIENT_PASSWORDS",
	"KAFKA_CLIENT_LISTENER_NAME", "KAFKA_INTER_BROKER_USER", "KAFKA_INTER_BROKER_PASSWORD",
	"KAFKA_CONTROLLER_USER", "KAFKA_CONTROLLER_PASSWORD", "KAFKA_BROKER_USER",
	"KAFKA_BROKER_PASSWORD", "KAFKA_ZOOKEEPER_PROTOCOL", "KAFKA_ZOOKEEPER_USER",
	"KAFKA_ZOOKEEPER_PASSWORD",
)

// envImageVarPrefixes are families of launcher variables.
var envImageVarPrefixes = []string{
	"KAFKA_JMX_", "KAFKA_LOG4J_", "KAFKA_TOOLS_LOG4J_", "KAFKA_JVM_", "KAFKA_GC_",
	"KAFKA_TLS_", "KAFKA_ZOOKEEPER_TLS_", "KAFKA_CFG_", // KAFKA_CFG_ handled separately
}

// envClusterIDKeys are what CLUSTER_ID-like variables map to. kbroker's
// cluster ID lives in etcd, so these are informational.
var envClusterIDKeys = toSet("cluster.id", "kraft.cluster.id")

// isKRaftOrZooKeeperKey reports whether key only matters to a KRaft or
// ZooKeeper-mode Kafka. kbroker keeps its metadata in etcd and needs none of
// them; Kafka images' compose files set them routinely.
func isKRaftOrZooKeeperKey(key string) bool {
	if lookupKey(key) != nil {
		return false
	}
	switch key {
	case "process.roles", "broker.id.generation.enable", "initial.broker.registration.timeout.ms",
		"control.plane.listener.name", "server.max.startup.time.ms", "early.start.listeners":
		return true
	}
	for _, p := range []string{"zookeeper.", "controller.", "metadata."} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// envKeyName turns the part of a variable name after its prefix into a
// Kafka key the way apache/kafka's and cp-kafka's launchers do: "___" is
// "-", "__" is "_", "_" is ".", applied in that order, then lower-cased.
func envKeyName(s string) string {
	s = strings.ReplaceAll(s, "___", "-")
	s = strings.ReplaceAll(s, "__", "\x00")
	s = strings.ReplaceAll(s, "_", ".")
	s = strings.ReplaceAll(s, "\x00", "_")
	return strings.ToLower(s)
}

// envSettings turns the environment into settings: first every KAFKA_*
// variable (apache/kafka and cp-kafka), then every KAFKA_CFG_* (bitnami), each
// group sorted by name so the result does not depend on the order of
// environ, and a bitnami variable beats a plain one for the same key. KRaft and
// ZooKeeper keys are kept (the caller reads controller.* from them) but
// reported at Info rather than warned about.
func envSettings(environ []string) ([]setting, []Notice) {
	var plain, bitnami []setting
	var notices []Notice
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case name == envClusterID:
			notices = append(notices, Notice{slog.LevelInfo, fmt.Sprintf("environment %s=%s is informational: kbroker keeps its cluster ID in etcd", name, value)})
		case strings.HasPrefix(name, envPrefixBitnami) && len(name) > len(envPrefixBitnami):
			bitnami = append(bitnami, setting{key: envKeyName(name[len(envPrefixBitnami):]), value: value, source: envSourcePrefix + name})
		case strings.HasPrefix(name, envPrefix) && len(name) > len(envPrefix):
			if isEnvImageVar(name) {
				notices = append(notices, Notice{slog.LevelDebug, fmt.Sprintf("environment %s configures a Kafka image's launcher, not the broker; ignored", name)})
				continue
			}
			plain = append(plain, setting{key: envKeyName(name[len(envPrefix):]), value: value, source: envSourcePrefix + name})
		}
	}
	bySource := func(s []setting) {
		sort.Slice(s, func(i, j int) bool { return s[i].source < s[j].source })
	}
	bySource(plain)
	bySource(bitnami)
	var out []setting
	for _, s := range append(plain, bitnami...) {
		switch {
		case envClusterIDKeys[s.key]:
			notices = append(notices, Notice{slog.LevelInfo, fmt.Sprintf("%s=%s is informational: kbroker keeps its cluster ID in etcd", strings.TrimPrefix(s.source, envSourcePrefix), s.value)})
			continue
		case strings.HasPrefix(s.key, "confluent."):
			notices = append(notices, Notice{slog.LevelDebug, fmt.Sprintf("%s is a Confluent Platform setting; ignored", strings.TrimPrefix(s.source, envSourcePrefix))})
			continue
		case isKRaftOrZooKeeperKey(s.key):
			notices = append(notices, Notice{slog.LevelInfo, fmt.Sprintf("%s (%s) is a KRaft/ZooKeeper setting kbroker does not need: metadata lives in etcd", s.key, strings.TrimPrefix(s.source, envSourcePrefix))})
		}
		out = append(out, s)
	}
	return out, notices
}

func isEnvImageVar(name string) bool {
	if envImageVars[name] {
		return true
	}
	for _, p := range envImageVarPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// kraftSettings holds the last value of the KRaft keys kbroker reads even
// though it implements none of them.
type kraftSettings struct {
	controllerListenerNames string
	quorumVoters            string
}

// kraftFrom collects the KRaft keys from every source, last setting winning.
func kraftFrom(settings []setting) kraftSettings {
	var k kraftSettings
	for _, s := range settings {
		switch strings.TrimSpace(s.key) {
		case "controller.listener.names":
			k.controllerListenerNames = strings.TrimSpace(s.value)
		case "controller.quorum.voters":
			k.quorumVoters = strings.TrimSpace(s.value)
		}
	}
	return k
}

// defaultEtcdPeerPort is etcd's well-known peer port, used for the members
// derived from controller.quorum.voters.
const defaultEtcdPeerPort = "2380"

// adaptKRaft lets a configuration written for a KRaft-mode Kafka run
// unchanged:
//
//   - Listeners named in controller.listener.names are not opened (kbroker
//     has no KRaft controller endpoint), unless that would leave none.
//   - When controller.quorum.voters lists more than one voter, this node is
//     one of them and etcd.embed.initial.cluster is set nowhere, the voters
//     become the members of the embedded etcd cluster: "id@host:port" becomes
//     "id=http://host:2380" (the port of an explicit etcd.embed.peer.url
//     instead of 2380), and the member listens on http://0.0.0.0:<that port>
//     unless etcd.embed.peer.url is set. The member advertises the URL listed
//     for its own node.id.
func (c *Config) adaptKRaft(k kraftSettings) []Notice {
	var notices []Notice
	if k.controllerListenerNames != "" {
		drop := map[string]bool{}
		for _, n := range splitCSV(k.controllerListenerNames) {
			drop[strings.ToUpper(strings.TrimSpace(n))] = true
		}
		kept := removeListeners(c.Listeners, drop)
		if len(kept) == 0 {
			notices = append(notices, Notice{slog.LevelWarn, fmt.Sprintf("every listener is named in controller.listener.names (%s); serving them as broker listeners", k.controllerListenerNames)})
		} else if len(kept) < len(c.Listeners) {
			for _, l := range c.Listeners {
				if drop[l.Name] {
					notices = append(notices, Notice{slog.LevelInfo, fmt.Sprintf("listener %s is a KRaft controller listener (controller.listener.names); kbroker does not need it and does not open it", l)})
				}
			}
			c.Listeners = kept
			if c.AdvertisedListeners != nil {
				c.AdvertisedListeners = removeListeners(c.AdvertisedListeners, drop)
			}
		}
	}
	if k.quorumVoters != "" {
		notices = append(notices, c.clusterFromVoters(k.quorumVoters)...)
	}
	return notices
}

func removeListeners(ls []Listener, drop map[string]bool) []Listener {
	out := []Listener{}
	for _, l := range ls {
		if !drop[l.Name] {
			out = append(out, l)
		}
	}
	return out
}

// voter is one entry of controller.quorum.voters: id@host:port.
type voter struct {
	id   int32
	host string
}

func parseVoters(list string) ([]voter, error) {
	var out []voter
	seen := map[int32]bool{}
	for _, entry := range splitCSV(list) {
		idText, addr, ok := strings.Cut(strings.TrimSpace(entry), "@")
		if !ok {
			return nil, fmt.Errorf("%q is not id@host:port", entry)
		}
		id, err := strconv.ParseInt(idText, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%q: voter id %q is not a node ID", entry, idText)
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return nil, fmt.Errorf("%q: %q is not host:port", entry, addr)
		}
		if seen[int32(id)] {
			return nil, fmt.Errorf("voter id %d is listed twice", id)
		}
		seen[int32(id)] = true
		out = append(out, voter{id: int32(id), host: host})
	}
	return out, nil
}

func (c *Config) clusterFromVoters(list string) []Notice {
	info := func(format string, args ...any) []Notice {
		return []Notice{{slog.LevelInfo, fmt.Sprintf(format, args...)}}
	}
	warn := func(format string, args ...any) []Notice {
		return []Notice{{slog.LevelWarn, fmt.Sprintf(format, args...)}}
	}
	voters, err := parseVoters(list)
	switch {
	case err != nil:
		return warn("controller.quorum.voters %q: %v; not used to form the etcd cluster", list, err)
	case len(voters) < 2:
		return nil // a single voter: the default single-member etcd is right
	case !c.EmbedEtcd():
		return info("controller.quorum.voters is not needed: metadata lives in the etcd at etcd.endpoints")
	case c.IsSet("etcd.embed.initial.cluster"):
		return info("controller.quorum.voters is not needed: etcd.embed.initial.cluster is set")
	}
	var mine *voter
	for i := range voters {
		if voters[i].id == c.NodeID {
			mine = &voters[i]
		}
	}
	if mine == nil {
		return warn("node.id %d is not among controller.quorum.voters (%s), so this broker embeds its own single-member etcd and does not join the voters' cluster; list every broker as a voter, or point every broker at one etcd cluster with etcd.endpoints", c.NodeID, list)
	}
	port := defaultEtcdPeerPort
	if c.IsSet("etcd.embed.peer.url") {
		if _, p, err := net.SplitHostPort(strings.TrimPrefix(c.EtcdEmbedPeerURL, "http://")); err == nil {
			port = p
		}
	}
	members := make([]string, len(voters))
	for i, v := range voters {
		members[i] = fmt.Sprintf("%d=http://%s", v.id, net.JoinHostPort(v.host, port))
	}
	c.EtcdEmbedInitialCluster = strings.Join(members, ",")
	c.markSet("etcd.embed.initial.cluster")
	if !c.IsSet("etcd.embed.peer.url") {
		c.EtcdEmbedPeerURL = "http://" + net.JoinHostPort("0.0.0.0", port)
		c.markSet("etcd.embed.peer.url")
	}
	return info("embedded etcd cluster formed from controller.quorum.voters: etcd.embed.initial.cluster=%s, etcd.embed.peer.url=%s", c.EtcdEmbedInitialCluster, c.EtcdEmbedPeerURL)
}

// dataDirCandidate is a data directory Kafka images keep their logs in, with
// the paths a user mounts a volume on to keep it.
type dataDirCandidate struct {
	dir    string
	mounts []string
}

// dataDirCandidates in order of preference. bitnami comes first because
// kbroker's own image declares /var/lib/kafka/data a volume, so that path is a
// mount point in every container; a /bitnami mount is therefore the more
// specific sign of where the user wants the data.
var dataDirCandidates = []dataDirCandidate{
	{dir: "/bitnami/kafka/data", mounts: []string{"/bitnami", "/bitnami/kafka", "/bitnami/kafka/data"}},
	{dir: "/var/lib/kafka/data", mounts: []string{"/var/lib/kafka", "/var/lib/kafka/data"}},
}

// hostProbe is what ParseEnv asks of the machine to choose a data directory;
// tests replace it.
type hostProbe struct {
	// mountPoints returns the set of mount points; nil when unknown.
	mountPoints func() map[string]bool
	// isDir reports whether path is an existing directory.
	isDir func(path string) bool
}

var realHost = hostProbe{
	mountPoints: procMountPoints,
	isDir: func(path string) bool {
		fi, err := os.Stat(path)
		return err == nil && fi.IsDir()
	},
}

// procMountPoints reads the mount points of this process's mount namespace
// from /proc/self/mountinfo (field 5, with octal escapes such as \040).
func procMountPoints() map[string]bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	m := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			m[unescapeMount(fields[4])] = true
		}
	}
	return m
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// defaultDataDir picks the log directory when no source sets log.dirs or
// log.dir: the first candidate on a mounted volume, else the first that
// exists, else none (Kafka's default /tmp/kafka-logs stays).
func defaultDataDir(h hostProbe) string {
	if mounts := h.mountPoints(); mounts != nil {
		for _, cand := range dataDirCandidates {
			for _, m := range cand.mounts {
				if mounts[m] {
					return cand.dir
				}
			}
		}
	}
	for _, cand := range dataDirCandidates {
		if h.isDir(cand.dir) {
			return cand.dir
		}
	}
	return ""
}

// EnvListeners returns the listeners the environment configures
// (KAFKA_CFG_LISTENERS, else KAFKA_LISTENERS), without those named in
// controller.listener.names, or nil when none is set or the value does not
// parse. Unlike ParseEnv it needs no complete, valid configuration, so
// `kbroker healthcheck` can find the port to check even when it runs without
// the broker's command line.
func EnvListeners(environ []string) []Listener {
	env, _ := envSettings(environ)
	var raw, controllers string
	for _, s := range env {
		switch s.key {
		case "listeners":
			raw = s.value
		case "controller.listener.names":
			controllers = s.value
		}
	}
	if raw == "" {
		return nil
	}
	ls, err := parseListeners(raw)
	if err != nil {
		return nil
	}
	drop := map[string]bool{}
	for _, n := range splitCSV(controllers) {
		drop[strings.ToUpper(strings.TrimSpace(n))] = true
	}
	if kept := removeListeners(ls, drop); len(kept) > 0 {
		return kept
	}
	return ls
}
