{{/* Names, labels and the values checks shared by every template. */}}

{{- define "clb-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clb-controller.fullname" -}}
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

{{- define "clb-controller.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "clb-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "clb-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clb-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "clb-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clb-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "clb-controller.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "clb-controller.fullname" .)) .Values.tencentcloud.existingSecret }}
{{- end }}

{{- define "clb-controller.webhookService" -}}
{{- printf "%s-webhook" (include "clb-controller.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clb-controller.webhookConfigName" -}}
{{- default (include "clb-controller.fullname" .) .Values.webhook.configName }}
{{- end }}

{{- define "clb-controller.webhookTLSSecret" -}}
{{- printf "%s-webhook-tls" (include "clb-controller.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clb-controller.electionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* DNS names of the webhook Service: the SANs of its certificate. */}}
{{- define "clb-controller.webhookDNSNames" -}}
{{- $svc := include "clb-controller.webhookService" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* Fails the render with a message naming the value, instead of a controller that crash-loops. */}}
{{- define "clb-controller.validate" -}}
{{- $_ := required "tencentcloud.region is required (e.g. --set tencentcloud.region=ap-guangzhou)" .Values.tencentcloud.region }}
{{- if not .Values.tencentcloud.existingSecret }}
{{- if not (and .Values.tencentcloud.secretId .Values.tencentcloud.secretKey) }}
{{- fail "set tencentcloud.secretId and tencentcloud.secretKey (plain text), or tencentcloud.existingSecret" }}
{{- end }}
{{- end }}
{{- if not (has .Values.webhook.certs.mode (list "helm" "certManager" "controller")) }}
{{- fail (printf "webhook.certs.mode must be helm, certManager or controller (got %q)" .Values.webhook.certs.mode) }}
{{- end }}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certs.mode "controller") (gt (int .Values.replicaCount) 1) }}
{{- fail "webhook.certs.mode=controller needs replicaCount 1: every replica would write its own caBundle" }}
{{- end }}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail "leaderElection.enabled=false needs replicaCount 1: two leaders would fight over the same load balancers" }}
{{- end }}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) }}
{{- fail (printf "webhook.failurePolicy must be Fail or Ignore (got %q)" .Values.webhook.failurePolicy) }}
{{- end }}
{{- if or (lt (int .Values.webhook.timeoutSeconds) 1) (gt (int .Values.webhook.timeoutSeconds) 30) }}
{{- fail "webhook.timeoutSeconds must be between 1 and 30" }}
{{- end }}
{{- end }}
