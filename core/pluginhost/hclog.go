package pluginhost

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newHCLog gives go-plugin an hclog logger whose output lands in zap. go-plugin
// logs its own events and relays each plugin's stderr lines through it.
func newHCLog(log *zap.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "",
		Level:      hclog.Debug,
		JSONFormat: true,
		Output:     &zapWriter{log: log},
	})
}

// zapWriter turns hclog's JSON lines into zap entries at the same level.
type zapWriter struct{ log *zap.Logger }

func (w *zapWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.log.Info(string(line))
			continue
		}
		msg, _ := m["@message"].(string)
		lvl, _ := m["@level"].(string)
		fields := make([]zap.Field, 0, len(m))
		for k, v := range m {
			switch k {
			case "@message", "@level", "@timestamp", "@module", "@caller", "timestamp":
				continue
			case "plugin":
				// go-plugin puts the binary's path here; our logger
				// already carries the plugin's name under that key.
				k = "path"
			}
			fields = append(fields, zap.Any(k, v))
		}
		level := zapcore.InfoLevel
		switch lvl {
		case "trace", "debug":
			level = zapcore.DebugLevel
		case "warn":
			level = zapcore.WarnLevel
		case "error":
			level = zapcore.ErrorLevel
		}
		if ce := w.log.Check(level, msg); ce != nil {
			ce.Write(fields...)
		}
	}
	return len(p), nil
}

var _ io.Writer = (*zapWriter)(nil)
