{{- define "tracevault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tracevault.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "tracevault.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tracevault.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tracevault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tracevault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tracevault.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tracevault.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tracevault.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tracevault.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tracevault.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The port of config.web.listen: the container's, the Service's target and the probes'. */}}
{{- define "tracevault.webPort" -}}
{{- splitList ":" .Values.config.web.listen | last | int -}}
{{- end -}}

{{/*
TOML of the configuration. A generic writer keeps values.yaml the one mirror of
config.example.toml: every key there renders without a template line per key.
Numbers from values.yaml arrive as float64; whole ones are written as integers, since
tracevault's integer keys refuse 4.0. Null values are left out (the binary's default applies).
*/}}
{{- define "tracevault.toml.value" -}}
{{- if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "bool" .) -}}
{{- . -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end -}}

{{- define "tracevault.toml.isTable" -}}
{{- if kindIs "map" . }}table{{ else if and (kindIs "slice" .) . }}{{ if kindIs "map" (first .) }}array{{ end }}{{ end -}}
{{- end -}}

{{- define "tracevault.toml.table" -}}
{{- $path := .path -}}
{{- range $k, $v := .table }}
{{- if and (not (kindIs "invalid" $v)) (eq (include "tracevault.toml.isTable" $v) "") }}
{{ $k }} = {{ include "tracevault.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- $kind := include "tracevault.toml.isTable" $v }}
{{- if eq $kind "table" }}

[{{ $path }}{{ $k }}]
{{- include "tracevault.toml.table" (dict "path" (printf "%s%s." $path $k) "table" $v) }}
{{- else if eq $kind "array" }}
{{- range $v }}

[[{{ $path }}{{ $k }}]]
{{- include "tracevault.toml.table" (dict "path" (printf "%s%s." $path $k) "table" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Applies the chart's own knowledge to a copy of .Values.config (dict "c" copy "Values" .Values):
TLS that ends at the chart's Ingress makes the login cookie Secure on every response ([web]
secure_cookies "auto" becomes "always").
*/}}
{{- define "tracevault.configFromChart" -}}
{{- $web := .c.web | default dict -}}
{{- if and .Values.ingress.enabled .Values.ingress.tls (eq (default "auto" $web.secure_cookies) "auto") -}}
{{- $_ := set $web "secure_cookies" "always" -}}
{{- $_ := set .c "web" $web -}}
{{- end -}}
{{- end -}}

{{- define "tracevault.toml" -}}
# Rendered by the tracevault chart from .Values.config; config.example.toml documents each key.
{{- $c := deepCopy .Values.config -}}
{{- include "tracevault.configFromChart" (dict "c" $c "Values" .Values) -}}
{{- include "tracevault.toml.table" (dict "path" "" "table" $c) }}
{{ end -}}

{{/*
The prune CronJob's configuration: the daemon's, with [storage] append_only off, the storage keys
of pruneJob.storage in place of the daemon's (the identity that may delete), and no jobs.
*/}}
{{- define "tracevault.pruneToml" -}}
{{- $c := deepCopy .Values.config -}}
{{- include "tracevault.configFromChart" (dict "c" $c "Values" .Values) -}}
{{- $st := mergeOverwrite (deepCopy $c.storage) (deepCopy (default dict .Values.pruneJob.storage)) -}}
{{- $_ := set $st "append_only" false -}}
{{- $_ := set $c "storage" $st -}}
{{- $_ := set $c "jobs" (list) -}}
# Rendered by the tracevault chart for the prune CronJob: prune runs as a separate identity.
{{- include "tracevault.toml.table" (dict "path" "" "table" $c) }}
{{ end -}}

{{/* Environment of every tracevault container: secrets by reference, never by value. */}}
{{- define "tracevault.env" -}}
- name: TRACEVAULT_CONFIG
  value: /etc/tracevault/tracevault.toml
- name: HOME
  value: /tmp
{{- range $name, $key := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "existingSecret is required when secretEnv is set" $.Values.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tracevault.volumeMounts" -}}
- name: config
  mountPath: /etc/tracevault
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.ageIdentity.secretName }}
- name: age
  mountPath: /etc/tracevault/age
  readOnly: true
{{- end }}
{{- end -}}

{{/* Called with (dict "ctx" $ "configMap" name); configMap empty: the release's. */}}
{{- define "tracevault.volumes" -}}
{{- $cm := .configMap -}}
{{- with .ctx -}}
- name: config
  configMap:
    name: {{ default (include "tracevault.fullname" .) $cm }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.ageIdentity.secretName }}
- name: age
  secret:
    secretName: {{ .Values.ageIdentity.secretName }}
    defaultMode: 0400
    items:
      - key: {{ .Values.ageIdentity.key }}
        path: {{ .Values.ageIdentity.key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The daemon pods only: restore and backup Job pods must not join its Service or PDB. */}}
{{- define "tracevault.daemonSelectorLabels" -}}
{{ include "tracevault.selectorLabels" . }}
app.kubernetes.io/component: daemon
{{- end -}}

{{/*
Pod labels, called with (dict "ctx" $ "component" "daemon|backup|restore"). The Workload
Identity label is what makes the webhook inject the token.
*/}}
{{- define "tracevault.podLabels" -}}
{{ include "tracevault.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- if .ctx.Values.azure.workloadIdentity.enabled }}
azure.workload.identity/use: "true"
{{- end }}
{{- with .ctx.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Pod spec shared by the Deployment, CronJob and restore Job. Call with
(dict "ctx" $ "args" (list ...) "restartPolicy" "..." "probes" bool).
*/}}
{{- define "tracevault.podSpec" -}}
{{- $ := .ctx -}}
serviceAccountName: {{ default (include "tracevault.serviceAccountName" $) (get . "serviceAccountName") }}
# tracevault never calls the Kubernetes API; Workload Identity's webhook projects its own token.
automountServiceAccountToken: false
{{- with get . "restartPolicy" }}
restartPolicy: {{ . }}
{{- end }}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
containers:
  - name: tracevault
    image: {{ include "tracevault.image" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      {{- include "tracevault.env" $ | nindent 6 }}
    {{- if get . "probes" }}
    ports:
      - name: http
        containerPort: {{ include "tracevault.webPort" $ }}
        protocol: TCP
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      {{- toYaml $.Values.probes.liveness | nindent 6 }}
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      {{- toYaml $.Values.probes.readiness | nindent 6 }}
    {{- end }}
    resources:
      {{- toYaml $.Values.resources | nindent 6 }}
    securityContext:
      {{- toYaml $.Values.securityContext | nindent 6 }}
    volumeMounts:
      {{- include "tracevault.volumeMounts" $ | nindent 6 }}
volumes:
  {{- include "tracevault.volumes" (dict "ctx" $ "configMap" (get . "configMap")) | nindent 2 }}
{{- with $.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The freeze-mode sidecar for each ClickHouse pod (mode: sidecar), printed by NOTES.txt to paste
into the Langfuse chart's clickhouse.sidecars; examples/langfuse-clickhouse-sidecar.yaml is the
same container with the volumes it needs. It runs as ClickHouse's user to read frozen parts.
*/}}
{{- define "tracevault.sidecarContainer" -}}
{{- $s := .Values.sidecar -}}
- name: tracevault
  image: {{ include "tracevault.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [serve, --log-format, json, --grace, {{ printf "%ds" (int .Values.graceSeconds) }}]
  env:
    {{- include "tracevault.env" . | nindent 4 }}
  ports:
    - name: tracevault
      containerPort: {{ include "tracevault.webPort" . }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /healthz
      port: tracevault
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  # No readiness probe: a sidecar that is not ready makes the whole ClickHouse pod unready, and
  # a storage outage must not take replicas out of their Service.
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    runAsUser: {{ $s.runAsUser }}
    runAsGroup: {{ $s.runAsGroup }}
    capabilities:
      drop: [ALL]
  volumeMounts:
    - name: {{ $s.dataVolumeName }}
      mountPath: {{ $s.dataMountPath }}
    - name: tracevault-config
      mountPath: /etc/tracevault
      readOnly: true
    - name: tracevault-tmp
      mountPath: /tmp
{{- end -}}
