package etcd

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that hands etcd's zap records to a slog.Handler,
// so the embedded server and the client log through the broker's logger
// instead of printing their own JSON lines to stderr.
//
// etcd is chatty at Info (every start prints dozens of lines) and warns about
// things that are deliberate here (one port for HTTP and gRPC, for example),
// so Debug, Info and Warn all become slog Debug; Error and above stay Error.
// Enabled consults the handler first, so a broker logging at Info pays
// nothing for etcd's Info lines.
//
// Shutting the server down makes etcd log its closed listeners at Error;
// once quiet is set (by Embedded.Close) everything goes to Debug.
type slogCore struct {
	h     slog.Handler
	quiet *atomic.Bool
}

// newZapLogger returns a zap logger writing into lg (slog.Default() if nil),
// tagged with component=name. Setting quiet (may be nil) demotes errors.
func newZapLogger(lg *slog.Logger, name string, quiet *atomic.Bool) *zap.Logger {
	if lg == nil {
		lg = slog.Default()
	}
	if quiet == nil {
		quiet = new(atomic.Bool)
	}
	h := lg.Handler().WithAttrs([]slog.Attr{slog.String("component", name)})
	return zap.New(&slogCore{h: h, quiet: quiet})
}

func (c *slogCore) level(l zapcore.Level) slog.Level {
	if l >= zapcore.ErrorLevel && !c.quiet.Load() {
		return slog.LevelError
	}
	return slog.LevelDebug
}

// benignErrors are messages etcd logs at Error although nothing is wrong.
var benignErrors = map[string]bool{
	// etcd 3.7 races its storage-version monitor against the first commit
	// of a fresh member ("missing term information") and retries later.
	"failed to update storage version": true,
}

func (c *slogCore) entryLevel(e zapcore.Entry) slog.Level {
	if benignErrors[e.Message] {
		return slog.LevelDebug
	}
	return c.level(e.Level)
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), c.level(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	if len(fields) == 0 {
		return c
	}
	return &slogCore{h: c.h.WithAttrs(zapFieldsToAttrs(fields)), quiet: c.quiet}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.h.Enabled(context.Background(), c.entryLevel(e)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.entryLevel(e), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(zapFieldsToAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// zapFieldsToAttrs renders zap fields through zap's own map encoder (which
// knows every field type) and sorts them so log lines are stable. zap's
// "error" key becomes the project-wide "err".
func zapFieldsToAttrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		name := k
		if name == "error" {
			name = "err"
		}
		attrs = append(attrs, slog.Any(name, enc.Fields[k]))
	}
	return attrs
}
