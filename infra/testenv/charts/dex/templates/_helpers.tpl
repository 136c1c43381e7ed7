{{- define "dex.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{ else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}
{{- define "dex.configSecretName" -}}
{{- if .Values.configSecret.create }}{{ include "dex.fullname" . }}{{ else }}{{ required "configSecret.name is required when configSecret.create is false" .Values.configSecret.name }}{{ end }}
{{- end }}
