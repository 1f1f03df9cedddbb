{{/*
The five processes. `key` is the values block, `api` the name of the API port (`http` for
the REST gateway, `grpc` for the services), `sections` the settings sections the binary
reads (its Settings struct), so each process gets exactly those variables. `userTokens`:
verifies or signs user access tokens, so it gets auth.jwt_secret (the others get only
auth.internal_token_secret). `calls`: the gRPC services it calls, which the NetworkPolicy
lets it reach. scripts/check-deploy.py compares this with the Settings structs in crates/.
*/}}
{{- define "socialflow.components" -}}
gateway:
  key: gateway
  api: http
  sections: [server, http, services, database, redis, s3, auth, rate_limit, activity, telemetry]
  userTokens: true
  calls: [user-service, video-service, engagement-service, payments-service]
user-service:
  key: userService
  api: grpc
  sections: [server, database, redis, auth, telemetry]
  userTokens: true
  calls: []
video-service:
  key: videoService
  api: grpc
  sections: [server, database, s3, engagement, auth, telemetry]
  calls: [engagement-service]
engagement-service:
  key: engagementService
  api: grpc
  sections: [server, database, redis, users, videos, auth, telemetry]
  # Authors and follows (user-service), videos (video-service).
  calls: [user-service, video-service]
payments-service:
  key: paymentsService
  api: grpc
  sections: [server, database, videos, engagement, grpc_client, provider, subscriptions, payouts, ledger, auth, telemetry]
  # Who owns a video (video-service: BatchGetVideos, for ad revenue and payouts) and how
  # much each was watched (engagement-service: ListVideoTotals, for payouts).
  calls: [video-service, engagement-service]
{{- end }}

{{- define "socialflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide prefix of every object name (at most 40 chars, leaving room for the process). */}}
{{- define "socialflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Object name of one process: <fullname>-<process>. Arguments: (list $ "gateway"). */}}
{{- define "socialflow.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "socialflow.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "socialflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "socialflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "socialflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "socialflow.labels" -}}
helm.sh/chart: {{ include "socialflow.chart" . }}
{{ include "socialflow.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: socialflow
{{- end }}

{{/* Labels of one process's objects. Arguments: (list $ "gateway"). */}}
{{- define "socialflow.componentLabels" -}}
{{ include "socialflow.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "socialflow.componentSelectorLabels" -}}
{{ include "socialflow.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* A process's values: `defaults` overridden by its own block. Arguments: (list $ "gateway"). Returns YAML. */}}
{{- define "socialflow.componentValues" -}}
{{- $root := index . 0 }}
{{- $meta := index (include "socialflow.components" $root | fromYaml) (index . 1) }}
{{- $own := index $root.Values $meta.key | default dict }}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.defaults) (deepCopy $own)) }}
{{- end }}

{{- define "socialflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "socialflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of one process. Arguments: (list $ "gateway"). */}}
{{- define "socialflow.image" -}}
{{- $root := index . 0 }}
{{- $img := $root.Values.image }}
{{- $repo := printf "%s/%s" $img.repository (index . 1) }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $repo }}{{ end }}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $img.tag) }}
{{- end }}

{{/* In-cluster gRPC URL of a service. Arguments: (list $ "user-service"). */}}
{{- define "socialflow.grpcUrl" -}}
{{- $root := index . 0 }}
{{- $meta := index (include "socialflow.components" $root | fromYaml) (index . 1) }}
{{- $ports := (include "socialflow.componentValues" .) | fromYaml }}
{{- printf "http://%s:%d" (include "socialflow.componentName" .) ($ports.ports.grpc | int64) }}
{{- end }}

{{/*
The non-secret settings of one process, as SOCIALFLOW__SECTION__KEY: value (rendered into its
ConfigMap). Arguments: (list $ "gateway").
*/}}
{{- define "socialflow.configEnv" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $meta := index (include "socialflow.components" $root | fromYaml) $name }}
{{- $c := (include "socialflow.componentValues" .) | fromYaml }}
{{- $v := $root.Values }}
{{- $env := dict }}
{{- $_ := set $env "SOCIALFLOW__SERVER__HOST" "0.0.0.0" }}
{{- $_ := set $env "SOCIALFLOW__SERVER__PORT" (index $c.ports $meta.api | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__SERVER__ADMIN_PORT" ($c.ports.admin | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__SERVER__SHUTDOWN_GRACE_SECS" ($v.shutdown.graceSeconds | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__TELEMETRY__LOG_LEVEL" $v.telemetry.logLevel }}
{{- $_ := set $env "SOCIALFLOW__TELEMETRY__ENVIRONMENT" $v.telemetry.environment }}
{{- $_ := set $env "SOCIALFLOW__TELEMETRY__OTLP_ENDPOINT" $v.telemetry.otlpEndpoint }}
{{- $_ := set $env "SOCIALFLOW__TELEMETRY__SAMPLER" $v.telemetry.sampler }}
{{- $_ := set $env "SOCIALFLOW__TELEMETRY__SAMPLER_ARG" ($v.telemetry.samplerArg | toString) }}
{{- if has "database" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__DATABASE__MAX_CONNECTIONS" ($v.postgres.pool.maxConnections | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__DATABASE__ACQUIRE_TIMEOUT_MS" ($v.postgres.pool.acquireTimeoutMs | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__DATABASE__CONNECT_TIMEOUT_MS" ($v.postgres.pool.connectTimeoutMs | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__DATABASE__STATEMENT_TIMEOUT_MS" ($v.postgres.pool.statementTimeoutMs | int64 | toString) }}
{{- end }}
{{- if has "redis" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__REDIS__KEY_PREFIX" $v.redis.keyPrefix }}
{{- $_ := set $env "SOCIALFLOW__REDIS__COMMAND_TIMEOUT_MS" ($v.redis.commandTimeoutMs | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__REDIS__CONNECT_TIMEOUT_MS" ($v.redis.connectTimeoutMs | int64 | toString) }}
{{- end }}
{{- if has "s3" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__S3__ENDPOINT" $v.s3.endpoint }}
{{- $_ := set $env "SOCIALFLOW__S3__REGION" $v.s3.region }}
{{- $_ := set $env "SOCIALFLOW__S3__BUCKET" $v.s3.bucket }}
{{- $_ := set $env "SOCIALFLOW__S3__TIMEOUT_MS" ($v.s3.timeoutMs | int64 | toString) }}
{{- end }}
{{- if has "http" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__HTTP__MAX_BODY_BYTES" ($c.http.maxBodyBytes | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__HTTP__WORKERS" ($c.http.workers | int64 | toString) }}
{{- $_ := set $env "SOCIALFLOW__HTTP__TRUSTED_PROXY_HOPS" ($c.http.trustedProxyHops | int64 | toString) }}
{{- end }}
{{- if has "services" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__SERVICES__USER" (include "socialflow.grpcUrl" (list $root "user-service")) }}
{{- $_ := set $env "SOCIALFLOW__SERVICES__VIDEO" (include "socialflow.grpcUrl" (list $root "video-service")) }}
{{- $_ := set $env "SOCIALFLOW__SERVICES__ENGAGEMENT" (include "socialflow.grpcUrl" (list $root "engagement-service")) }}
{{- $_ := set $env "SOCIALFLOW__SERVICES__PAYMENTS" (include "socialflow.grpcUrl" (list $root "payments-service")) }}
{{- end }}
{{- if has "engagement" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__ENGAGEMENT__URL" (include "socialflow.grpcUrl" (list $root "engagement-service")) }}
{{- end }}
{{- if has "users" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__USERS__URL" (include "socialflow.grpcUrl" (list $root "user-service")) }}
{{- end }}
{{- if has "videos" $meta.sections }}
{{- $_ := set $env "SOCIALFLOW__VIDEOS__URL" (include "socialflow.grpcUrl" (list $root "video-service")) }}
{{- end }}
{{- /* Free-form settings (defaults.settings, then the process's own) win over the above. */}}
{{- $flat := include "socialflow.flattenSettings" (list "SOCIALFLOW" ($c.settings | default dict)) | fromYaml }}
{{- range $k, $val := $flat }}
{{- $_ := set $env $k $val }}
{{- end }}
{{- range $k := keys $env | sortAlpha }}
{{ $k }}: {{ index $env $k | quote }}
{{- end }}
{{- end }}

{{/*
Nested settings → SOCIALFLOW__SECTION__KEY lines: {rate_limit: {login: {per_minute: 20}}}
gives SOCIALFLOW__RATE_LIMIT__LOGIN__PER_MINUTE: "20". Arguments: (list prefix map).
*/}}
{{- define "socialflow.flattenSettings" -}}
{{- $prefix := index . 0 }}
{{- range $k, $v := index . 1 }}
{{- $name := printf "%s__%s" $prefix (upper $k) }}
{{- if kindIs "map" $v }}
{{ include "socialflow.flattenSettings" (list $name $v) }}
{{- else if and (kindIs "float64" $v) (eq ($v | int64 | float64) $v) }}
{{ $name }}: {{ $v | int64 | toString | quote }}
{{- else }}
{{ $name }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Secret-backed settings of one process, as container env entries. Helper variables (SF_*)
are not read by the binaries (they read only SOCIALFLOW__*); they exist so Kubernetes can
put a password into a URL with $(SF_...). Arguments: (list $ "gateway").
*/}}
{{- define "socialflow.secretEnv" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $meta := index (include "socialflow.components" $root | fromYaml) $name }}
{{- $v := $root.Values }}
{{- if has "database" $meta.sections }}
{{- if $v.postgres.urlKey }}
- name: SOCIALFLOW__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ required "postgres.existingSecret is required" $v.postgres.existingSecret }}
      key: {{ $v.postgres.urlKey }}
{{- else }}
- name: SF_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "postgres.existingSecret is required" $v.postgres.existingSecret }}
      key: {{ $v.postgres.passwordKey }}
- name: SOCIALFLOW__DATABASE__URL
  value: {{ printf "postgres://%s:$(SF_DATABASE_PASSWORD)@%s:%d/%s" $v.postgres.user $v.postgres.host ($v.postgres.port | int64) $v.postgres.database | quote }}
{{- end }}
{{- end }}
{{- if has "redis" $meta.sections }}
{{- if $v.redis.existingSecret }}
- name: SF_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.existingSecret }}
      key: {{ $v.redis.passwordKey }}
- name: SOCIALFLOW__REDIS__URL
  value: {{ printf "redis://:$(SF_REDIS_PASSWORD)@%s:%d/%d" $v.redis.host ($v.redis.port | int64) ($v.redis.db | int64) | quote }}
{{- else }}
- name: SOCIALFLOW__REDIS__URL
  value: {{ printf "redis://%s:%d/%d" $v.redis.host ($v.redis.port | int64) ($v.redis.db | int64) | quote }}
{{- end }}
{{- end }}
{{- if has "s3" $meta.sections }}
- name: SOCIALFLOW__S3__ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "s3.existingSecret is required" $v.s3.existingSecret }}
      key: {{ $v.s3.accessKeyKey }}
- name: SOCIALFLOW__S3__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.s3.existingSecret }}
      key: {{ $v.s3.secretKeyKey }}
{{- end }}
{{- if has "auth" $meta.sections }}
{{- if $meta.userTokens }}
- name: SOCIALFLOW__AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "auth.existingSecret is required (the JWT signing key)" $v.auth.existingSecret }}
      key: {{ $v.auth.jwtSecretKey }}
{{- end }}
- name: SOCIALFLOW__AUTH__INTERNAL_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "auth.existingSecret is required (the internal token key)" $v.auth.existingSecret }}
      key: {{ $v.auth.internalTokenSecretKey }}
{{- end }}
{{- end }}
