{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "feedback-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "feedback-service.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "feedback-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "feedback-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "feedback-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "feedback-service.labels" -}}
helm.sh/chart: {{ include "feedback-service.chart" . }}
{{ include "feedback-service.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "feedback-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "feedback-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "feedback-service.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The ClickHouse URL Secret is required: in Kubernetes the service always uses a ClickHouse server.
Every template that needs it calls this, so rendering fails with one clear message.
*/}}
{{- define "feedback-service.clickhouseSecret" -}}
{{- required "clickhouse.existingSecret is required: the name of an existing Secret holding the ClickHouse server URL (FEEDBACK_CLICKHOUSE_URL, e.g. https://user:pass@clickhouse:8443). The embedded engine is one process per data directory and cannot back a Deployment; create the Secret with: kubectl create secret generic feedback-clickhouse --from-literal=url=https://user:pass@host:8443" .Values.clickhouse.existingSecret }}
{{- end }}

{{/*
FEEDBACK_PUBLIC_URL, the base of reviewer console links (<url>/#link=<token>): config.publicUrl; else,
with the Ingress enabled, its first non-wildcard host, as https:// when an ingress.tls entry covers that
host (by name, by wildcard, or an entry without hosts) and http:// otherwise, plus ingress.path; else
empty, and the setting stays unset (the pods would derive http://localhost:<port> from 0.0.0.0).
*/}}
{{- define "feedback-service.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if .Values.ingress.enabled }}
{{- $host := "" }}
{{- range .Values.ingress.hosts }}
{{- if and (not $host) (not (hasPrefix "*" .)) }}{{ $host = . }}{{ end }}
{{- end }}
{{- if $host }}
{{- $tls := false }}
{{- range .Values.ingress.tls }}
{{- if not .hosts }}{{ $tls = true }}{{ end }}
{{- range .hosts }}
{{- $wildcard := and (hasPrefix "*." .) (hasSuffix (trimPrefix "*" .) $host) (not (contains "." (trimSuffix (trimPrefix "*" .) $host))) }}
{{- if or (eq . $host) $wildcard }}{{ $tls = true }}{{ end }}
{{- end }}
{{- end }}
{{- printf "%s://%s%s" (ternary "https" "http" $tls) $host (trimSuffix "/" .Values.ingress.path) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The non-secret settings as a map of FEEDBACK_* and OTEL_* names to strings (ConfigMap data). */}}
{{- define "feedback-service.configData" -}}
FEEDBACK_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.containerPorts.grpc) | quote }}
FEEDBACK_HTTP_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.containerPorts.http) | quote }}
{{- with .Values.config.corsOrigins }}
FEEDBACK_CORS_ORIGINS: {{ join "," . | quote }}
{{- end }}
{{- with include "feedback-service.publicUrl" . }}
FEEDBACK_PUBLIC_URL: {{ . | quote }}
{{- end }}
{{- if .Values.metrics.enabled }}
FEEDBACK_METRICS_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.containerPorts.metrics) | quote }}
{{- end }}
FEEDBACK_CLICKHOUSE_DATABASE: {{ .Values.clickhouse.database | quote }}
{{- with .Values.clickhouse.cluster }}
FEEDBACK_CLICKHOUSE_CLUSTER: {{ . | quote }}
{{- end }}
FEEDBACK_DB_THREADS: {{ .Values.config.dbThreads | int64 | quote }}
FEEDBACK_BATCH_MAX_ROWS: {{ .Values.config.batchMaxRows | int64 | quote }}
FEEDBACK_BATCH_MAX_DELAY_MS: {{ include "feedback-service.number" .Values.config.batchMaxDelayMs | quote }}
FEEDBACK_WRITE_QUEUE_ROWS: {{ .Values.config.writeQueueRows | int64 | quote }}
FEEDBACK_SHUTDOWN_GRACE_S: {{ include "feedback-service.number" .Values.config.shutdownGraceSeconds | quote }}
FEEDBACK_REPLICA_SETTLE_S: {{ include "feedback-service.number" .Values.config.replicaSettleSeconds | quote }}
FEEDBACK_RATE_LIMIT_PER_S: {{ include "feedback-service.number" .Values.config.rateLimitPerSecond | quote }}
FEEDBACK_RATE_LIMIT_BURST: {{ include "feedback-service.number" .Values.config.rateLimitBurst | quote }}
FEEDBACK_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
FEEDBACK_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
{{- if .Values.tracing.enabled }}
FEEDBACK_TRACING: {{ .Values.tracing.exporter | quote }}
{{- with .Values.tracing.serviceName }}
OTEL_SERVICE_NAME: {{ . | quote }}
{{- end }}
{{- with .Values.tracing.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- with .Values.tracing.otlpProtocol }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ . | quote }}
{{- end }}
{{- with .Values.tracing.sampler }}
OTEL_TRACES_SAMPLER: {{ . | quote }}
{{- end }}
{{- with .Values.tracing.samplerArg }}
OTEL_TRACES_SAMPLER_ARG: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The secret settings: only ever references to existing Secrets, never values. */}}
{{- define "feedback-service.secretEnv" -}}
- name: FEEDBACK_CLICKHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "feedback-service.clickhouseSecret" . | quote }}
      key: {{ .Values.clickhouse.existingSecretUrlKey | quote }}
{{- with .Values.auth.adminKey.existingSecret }}
- name: FEEDBACK_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.auth.adminKey.existingSecretKey | quote }}
{{- end }}
{{- with .Values.auth.tokenSecrets.existingSecret }}
- name: FEEDBACK_TOKEN_SECRETS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.auth.tokenSecrets.existingSecretKey | quote }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: longer than the preStop sleep plus the service's own drain
(FEEDBACK_SHUTDOWN_GRACE_S), or the kubelet kills calls the service would still have finished.
*/}}
{{- define "feedback-service.terminationGracePeriodSeconds" -}}
{{- $drain := add (int .Values.preStopSleepSeconds) (ceil .Values.config.shutdownGraceSeconds | int) }}
{{- $given := .Values.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $given }}
{{- add $drain 10 }}
{{- else if le (int $given) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than preStopSleepSeconds + config.shutdownGraceSeconds (%d s): the kubelet would kill the pod while in-flight calls drain. Raise it or leave it null to compute it" (int $given) $drain) }}
{{- else }}
{{- int $given }}
{{- end }}
{{- end }}

{{/* Replicas the PodDisruptionBudget protects: the HPA's minimum when it is on, else replicaCount. */}}
{{- define "feedback-service.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- int .Values.autoscaling.minReplicas }}
{{- else }}
{{- int .Values.replicaCount }}
{{- end }}
{{- end }}

{{/* Pod-level security settings shared by the service, migration and test pods. */}}
{{- define "feedback-service.podSecurityContext" -}}
{{- with .Values.podSecurityContext -}}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* An IntOrString value: numbers as numbers, percentages quoted. */}}
{{- define "feedback-service.intOrString" -}}
{{- if kindIs "string" . }}{{ quote . }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}

{{/* A number as the service parses it: whole numbers without an exponent (2500000, not 2.5e+06). */}}
{{- define "feedback-service.number" -}}
{{- if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}
