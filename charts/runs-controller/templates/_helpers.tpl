{{/* The chart's name, truncated to a DNS label. */}}
{{- define "runs-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object. */}}
{{- define "runs-controller.fullname" -}}
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

{{- define "runs-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "runs-controller.labels" -}}
helm.sh/chart: {{ include "runs-controller.chart" . }}
{{ include "runs-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bubustack
{{- end }}

{{/* The pods' identity: Deployment, Service, PDB and spread constraints select on these. */}}
{{- define "runs-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runs-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "runs-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "runs-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The generated rules (files/rbac.yaml, written by `runs-controller rbac --write`). */}}
{{- define "runs-controller.rules" -}}
{{- .Files.Get "files/rbac.yaml" | fromYaml | toJson }}
{{- end }}

{{/* The release-namespace rules with the Lease and ConfigMap names filled in; the
ConfigMap rule is dropped when the controller runs on compiled defaults only, the Lease rules
without leader election. */}}
{{- define "runs-controller.releaseNamespaceRules" -}}
{{- $rules := (include "runs-controller.rules" . | fromJson).releaseNamespaceRules }}
{{- $out := list }}
{{- range $rules }}
{{- $rule := . }}
{{- $names := list }}
{{- $keep := true }}
{{- range (default list .resourceNames) }}
{{- $name := . | replace "${LEASE_NAME}" $.Values.leaderElection.id | replace "${CONFIG_NAME}" $.Values.operatorConfig.name }}
{{- if eq $name "" }}{{ $keep = false }}{{ end }}
{{- $names = append $names $name }}
{{- end }}
{{- if and $keep $names }}
{{- $rule = merge (dict "resourceNames" $names) (omit $rule "resourceNames") }}
{{- end }}
{{- if and (not $.Values.leaderElection.enabled) (has "leases" .resources) }}{{ $keep = false }}{{ end }}
{{- if $keep }}
{{- $out = append $out $rule }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{- define "runs-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
