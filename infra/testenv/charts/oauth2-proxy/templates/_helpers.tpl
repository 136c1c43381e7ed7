{{- define "oauth2-proxy.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{ else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}
{{- define "oauth2-proxy.secretName" -}}
{{- if .Values.config.existingSecret }}{{ .Values.config.existingSecret }}{{ else }}{{ include "oauth2-proxy.fullname" . }}{{ end }}
{{- end }}
