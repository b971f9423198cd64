package config

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// setting is one key=value from the file or the command line, with where it
// came from for error messages.
type setting struct {
	key, value string
	source     string
}

// Parse builds the configuration from the command line (os.Args[1:]) and
// the process environment: an optional properties file first, then the
// environment variables Kafka's container images read (see ParseEnv), then
// --override key=value pairs; a later source beats an earlier one and the
// last setting of a key wins. It returns one warning per unknown or ignored
// key (the Warn-level notices of ParseEnv), for the caller to log, and an
// error wrapping ErrHelp, ErrVersion, ErrUsage or ErrInvalidConfig. The
// returned Config has passed Validate.
func Parse(args []string) (*Config, []string, error) {
	c, notices, err := ParseEnv(args, os.Environ())
	var warnings []string
	for _, n := range notices {
		if n.Level >= slog.LevelWarn {
			warnings = append(warnings, n.Msg)
		}
	}
	return c, warnings, err
}

// ParseEnv is Parse with the environment given as "NAME=value" strings, as
// os.Environ returns them. The precedence is that of Kafka's apache/kafka
// image: the properties file, then the environment, then --override. Notices
// come at the level the caller should log them at: Warn for unknown and
// unimplemented keys, Info for KRaft/ZooKeeper settings kbroker does not need,
// Debug for image-only variables. See the package doc, "Environment".
func ParseEnv(args, environ []string) (*Config, []Notice, error) {
	return parseEnv(args, environ, realHost)
}

func parseEnv(args, environ []string, host hostProbe) (*Config, []Notice, error) {
	file, overrides, err := splitArgs(args)
	if err != nil {
		return nil, nil, err
	}
	var settings []setting
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("read properties file: %w", err)
		}
		props, err := parseProperties(string(data))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: properties file %s: %v", ErrInvalidConfig, file, err)
		}
		for _, p := range props {
			settings = append(settings, setting{key: p.key, value: p.value, source: fmt.Sprintf("%s:%d", file, p.line)})
		}
	}
	env, notices := envSettings(environ)
	settings = append(settings, env...)
	for _, o := range overrides {
		key, value, _ := strings.Cut(o, "=")
		if strings.TrimSpace(key) == "" {
			return nil, notices, fmt.Errorf("%w: --override %q has an empty key; want key=value", ErrUsage, o)
		}
		settings = append(settings, setting{key: key, value: value, source: "--override"})
	}
	// KRaft and ZooKeeper keys from the environment were already reported
	// at Info by envSettings; apply would warn about them again.
	applied := make([]setting, 0, len(settings))
	for _, s := range settings {
		if strings.HasPrefix(s.source, envSourcePrefix) && isKRaftOrZooKeeperKey(strings.TrimSpace(s.key)) {
			continue
		}
		applied = append(applied, s)
	}
	c := NewConfig()
	warnings, err := c.apply(applied)
	for _, w := range warnings {
		notices = append(notices, Notice{Level: slog.LevelWarn, Msg: w})
	}
	if err != nil {
		return nil, notices, err
	}
	notices = append(notices, c.adaptKRaft(kraftFrom(settings))...)
	if !c.IsSet("log.dirs") {
		if dir := defaultDataDir(host); dir != "" {
			c.LogDirs = []string{dir}
			notices = append(notices, Notice{Level: slog.LevelInfo, Msg: fmt.Sprintf("log.dirs is not set; using %s, where Kafka images keep their data", dir)})
		}
	}
	if err := c.Validate(); err != nil {
		return nil, notices, err
	}
	return c, notices, nil
}

// splitArgs separates the properties file from the overrides. As in Kafka's
// launcher the file, when given, must come first.
func splitArgs(args []string) (file string, overrides []string, err error) {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return "", nil, ErrHelp
		case "--version":
			return "", nil, ErrVersion
		}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--override":
			if i+1 >= len(args) {
				return "", nil, fmt.Errorf("%w: --override needs a key=value argument", ErrUsage)
			}
			i++
			overrides = append(overrides, args[i])
		case strings.HasPrefix(a, "--override="):
			overrides = append(overrides, strings.TrimPrefix(a, "--override="))
		case strings.HasPrefix(a, "-"):
			return "", nil, fmt.Errorf("%w: unknown option %s", ErrUsage, a)
		default:
			return "", nil, fmt.Errorf("%w: unexpected argument %q (the properties file must come first; settings go in --override key=value)", ErrUsage, a)
		}
	}
	return file, overrides, nil
}

// apply sets each key in order. Values are trimmed, as Kafka's ConfigDef
// does. Unknown and ignored keys become warnings, one per key.
func (c *Config) apply(settings []setting) ([]string, error) {
	var warnings []string
	warned := map[string]bool{}
	warn := func(key, msg string) {
		if !warned[key] {
			warned[key] = true
			warnings = append(warnings, msg)
		}
	}
	// fallbacks holds the last value of each fallback alias (log.dir); it
	// applies only when its key is never set directly.
	fallbacks := map[*keyDef]string{}
	for _, s := range settings {
		key, value := strings.TrimSpace(s.key), strings.TrimSpace(s.value)
		switch classifyKey(key) {
		case kindIgnoredKafka:
			warn(key, fmt.Sprintf("config %s (%s) is an Apache Kafka setting kbroker does not implement; ignored", key, s.source))
			continue
		case kindUnknown:
			warn(key, fmt.Sprintf("unknown config %s (%s); ignored", key, s.source))
			continue
		}
		d := lookupKey(key)
		if key == d.fallback {
			// Check the value now so a bad one is reported even if unused.
			if err := d.set(NewConfig(), value); err != nil {
				return warnings, fmt.Errorf("%s: %w", s.source, renameKey(err, key))
			}
			fallbacks[d] = value
			continue
		}
		if err := d.set(c, value); err != nil {
			return warnings, fmt.Errorf("%s: %w", s.source, renameKey(err, key))
		}
		c.markSet(d.name)
	}
	for d, value := range fallbacks {
		if c.explicit[d.name] {
			continue
		}
		if err := d.set(c, value); err != nil {
			return warnings, renameKey(err, d.fallback)
		}
		c.markSet(d.name)
	}
	return warnings, nil
}

func (c *Config) markSet(key string) {
	if c.explicit == nil {
		c.explicit = map[string]bool{}
	}
	c.explicit[key] = true
}

// renameKey makes an InvalidValueError name the key as the user wrote it
// (broker.id rather than node.id).
func renameKey(err error, key string) error {
	if e, ok := err.(*InvalidValueError); ok && e.Key != key {
		cp := *e
		cp.Key = key
		return &cp
	}
	return err
}
