package rtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace is below slog.LevelDebug, for pion's trace logs.
const levelTrace = slog.LevelDebug - 4

// loggerFactory gives pion loggers that write to a slog.Logger, with the
// pion scope ("ice", "dtls", ...) as an attribute.
type loggerFactory struct{ l *slog.Logger }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return scopedLogger{f.l.With("pion", scope)}
}

type scopedLogger struct{ l *slog.Logger }

func (s scopedLogger) log(level slog.Level, msg string) {
	s.l.Log(context.Background(), level, msg)
}

func (s scopedLogger) logf(level slog.Level, format string, args ...any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (s scopedLogger) Trace(msg string)                  { s.log(levelTrace, msg) }
func (s scopedLogger) Tracef(format string, args ...any) { s.logf(levelTrace, format, args...) }
func (s scopedLogger) Debug(msg string)                  { s.log(slog.LevelDebug, msg) }
func (s scopedLogger) Debugf(format string, args ...any) { s.logf(slog.LevelDebug, format, args...) }
func (s scopedLogger) Info(msg string)                   { s.log(slog.LevelInfo, msg) }
func (s scopedLogger) Infof(format string, args ...any)  { s.logf(slog.LevelInfo, format, args...) }
func (s scopedLogger) Warn(msg string)                   { s.log(slog.LevelWarn, msg) }
func (s scopedLogger) Warnf(format string, args ...any)  { s.logf(slog.LevelWarn, format, args...) }
func (s scopedLogger) Error(msg string)                  { s.log(slog.LevelError, msg) }
func (s scopedLogger) Errorf(format string, args ...any) { s.logf(slog.LevelError, format, args...) }
