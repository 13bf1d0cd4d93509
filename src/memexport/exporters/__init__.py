"""Exporters: Prometheus exposition (and multiprocess mode) and OpenTelemetry, reading the model."""
