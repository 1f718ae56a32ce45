{{- define "fake-clb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fake-clb.fullname" -}}
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

{{- define "fake-clb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "fake-clb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fake-clb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fake-clb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The config file: configFile, or values.config without nulls and empty sections; plus the state file.
The listen addresses always come from the command line (service.apiPort / service.adminPort). */}}
{{- define "fake-clb.config" -}}
{{- $config := dict }}
{{- if .Values.configFile }}
{{- $config = fromYaml .Values.configFile }}
{{- if hasKey $config "Error" }}
{{- fail (printf "configFile is not YAML: %s" (get $config "Error")) }}
{{- end }}
{{- $config = omit $config "listen" "adminListen" }}
{{- else }}
{{- if or (hasKey .Values.config "listen") (hasKey .Values.config "adminListen") }}
{{- fail "config.listen and config.adminListen are set by the chart (service.apiPort / service.adminPort)" }}
{{- end }}
{{- $config = dict "accounts" .Values.config.accounts "loadBalancers" .Values.config.loadBalancers }}
{{- with .Values.config.regions }}{{ $_ := set $config "regions" . }}{{ end }}
{{- with .Values.config.limits }}{{ $_ := set $config "limits" . }}{{ end }}
{{- if not (kindIs "invalid" .Values.config.seed) }}{{ $_ := set $config "seed" .Values.config.seed }}{{ end }}
{{- end }}
{{- if .Values.persistence.enabled }}{{ $_ := set $config "stateFile" "/var/lib/fake-clb/state.json" }}{{ end }}
{{- toYaml $config }}
{{- end }}
