{{/* Names and labels shared by every template. */}}

{{- define "kinoit.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "kinoit.labels" -}}
app.kubernetes.io/part-of: kinoit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kinoit.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Fail early, with the fix in the message, when a required value is missing. */}}
{{- define "kinoit.validate" -}}
{{- if .Values.secrets.create -}}
{{- $token := required "secrets.apiToken is required: the bearer token orchestrate checks, e.g. --set secrets.apiToken=$(openssl rand -hex 32) (or set secrets.create=false and create the secret with faas-cli secret create)" .Values.secrets.apiToken -}}
{{- if lt (len $token) 16 -}}
{{- fail "secrets.apiToken is too short: use at least 16 characters, e.g. $(openssl rand -hex 32)" -}}
{{- end -}}
{{- $hook := required "secrets.webhookSecret is required: the Standard Webhooks signing secret, e.g. --set secrets.webhookSecret=whsec_$(openssl rand -base64 32)" .Values.secrets.webhookSecret -}}
{{- if not (hasPrefix "whsec_" $hook) -}}
{{- fail "secrets.webhookSecret must start with whsec_ followed by base64 (Standard Webhooks), e.g. whsec_$(openssl rand -base64 32)" -}}
{{- end -}}
{{- $stage := required "secrets.stageSecret is required: orchestrate signs every stage request with it, e.g. --set secrets.stageSecret=$(openssl rand -hex 32)" .Values.secrets.stageSecret -}}
{{- if lt (len $stage) 16 -}}
{{- fail "secrets.stageSecret is too short: use at least 16 characters, e.g. $(openssl rand -hex 32)" -}}
{{- end -}}
{{- end -}}
{{- if .Values.cluster.enabled -}}
{{- $secret := required "cluster.secret is required when cluster.enabled: 64 hex characters shared by the cluster peers, e.g. --set cluster.secret=$(openssl rand -hex 32)" .Values.cluster.secret -}}
{{- if not (regexMatch "^[0-9a-f]{64}$" $secret) -}}
{{- fail "cluster.secret must be exactly 64 lowercase hex characters (openssl rand -hex 32)" -}}
{{- end -}}
{{- if not .Values.kubo.enabled -}}
{{- fail "cluster.enabled needs kubo.enabled: each cluster peer runs beside a Kubo node" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.kubo.enabled (not (has .Values.kubo.routingType (list "none" "dhtclient"))) -}}
{{- fail "kubo.routingType must be none or dhtclient: the cluster is closed, its nodes never serve the public DHT" -}}
{{- end -}}
{{- end -}}
