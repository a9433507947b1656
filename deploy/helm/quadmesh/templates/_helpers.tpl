{{- define "quadmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quadmesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quadmesh.controlling" -}}{{ include "quadmesh.fullname" . }}-controlling{{- end -}}
{{- define "quadmesh.copy" -}}{{ include "quadmesh.fullname" . }}-copy{{- end -}}
{{- define "quadmesh.secret" -}}{{ .Values.auth.existingSecret | default (printf "%s-credentials" (include "quadmesh.fullname" .)) }}{{- end -}}
{{- define "quadmesh.tlsSecret" -}}{{ .Values.tls.existingSecret | default (printf "%s-tls" (include "quadmesh.fullname" .)) }}{{- end -}}

{{- define "quadmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "quadmesh.selectorLabels" . }}
{{- end -}}

{{- define "quadmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quadmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The instance container, for role "controlling" or "copy" (dict "root" . "role" ROLE). */}}
{{- define "quadmesh.container" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $scheme := ternary "HTTPS" "HTTP" $v.tls.enabled -}}
- name: quadmesh
  image: "{{ $v.image.repository }}:{{ $v.image.tag | default $.Chart.AppVersion }}"
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: [serve]
  ports:
    - {name: http, containerPort: {{ $v.port }}}
  env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: QUADMESH_REPO
      value: {{ join "," $v.repositories | quote }}
    - name: QUADMESH_INSTANCE_NAME
      value: $(POD_NAME)
    - name: QUADMESH_USER
      valueFrom: {secretKeyRef: {name: {{ include "quadmesh.secret" $ }}, key: user}}
    - name: QUADMESH_PASSWORD_FILE
      value: /run/secrets/quadmesh/password
    {{- if eq .role "controlling" }}
    - name: QUADMESH_ROLE
      value: controlling
    - name: QUADMESH_ADVERTISE
      value: "{{ include "quadmesh.controlling" $ }}:{{ $v.port }}"
    # Started without data (its volume lost), it re-grows from a copy found here.
    - name: QUADMESH_PEERS
      value: "{{ include "quadmesh.copy" $ }}:{{ $v.port }}"
    {{- else }}
    - name: QUADMESH_ROLE
      value: copy
    - name: QUADMESH_CONTROLLING
      value: "{{ include "quadmesh.controlling" $ }}:{{ $v.port }}"
    - name: QUADMESH_ADVERTISE
      value: "$(POD_NAME).{{ include "quadmesh.copy" $ }}:{{ $v.port }}"
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: QUADMESH_TLS_CERT
      value: /run/secrets/quadmesh-tls/tls.crt
    - name: QUADMESH_TLS_KEY
      value: /run/secrets/quadmesh-tls/tls.key
    - name: QUADMESH_TLS_CA
      value: /run/secrets/quadmesh-tls/ca.crt
    - name: QUADMESH_TLS_PEER_NAME
      value: {{ $v.tls.peerName | quote }}
    - name: QUADMESH_CA
      value: /run/secrets/quadmesh-tls/ca.crt
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumeMounts:
    - {name: data, mountPath: /data}
    - {name: credentials, mountPath: /run/secrets/quadmesh, readOnly: true}
    {{- if $v.tls.enabled }}
    - {name: tls, mountPath: /run/secrets/quadmesh-tls, readOnly: true}
    {{- end }}
  startupProbe:
    httpGet: {path: /hostname, port: http{{ if $v.tls.enabled }}, scheme: HTTPS{{ end }}}
    periodSeconds: {{ $v.probes.startup.periodSeconds }}
    failureThreshold: {{ $v.probes.startup.failureThreshold }}
  livenessProbe:
    httpGet: {path: /hostname, port: http{{ if $v.tls.enabled }}, scheme: HTTPS{{ end }}}
    periodSeconds: {{ $v.probes.liveness.periodSeconds }}
    failureThreshold: {{ $v.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet: {path: /ready, port: http{{ if $v.tls.enabled }}, scheme: HTTPS{{ end }}}
    periodSeconds: {{ $v.probes.readiness.periodSeconds }}
    failureThreshold: {{ $v.probes.readiness.failureThreshold }}
  lifecycle:
    # Let load balancers stop sending traffic before SIGTERM.
    preStop:
      sleep: {seconds: {{ $v.preStopSleepSeconds }}}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
{{- end -}}

{{- define "quadmesh.podSpec" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
# Long enough for a copy to leave the cluster, and for the store to checkpoint.
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
enableServiceLinks: false
{{- with $v.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with .place.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .place.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .place.topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
containers:
{{- include "quadmesh.container" (dict "root" $ "role" .role "resources" .place.resources) | nindent 2 }}
volumes:
  - name: credentials
    secret: {secretName: {{ include "quadmesh.secret" $ }}, defaultMode: 0440}
  {{- if $v.tls.enabled }}
  - name: tls
    secret: {secretName: {{ include "quadmesh.tlsSecret" $ }}, defaultMode: 0440}
  {{- end }}
  {{- if eq .role "copy" }}
  # Copies keep no data across restarts: a new one copies the cluster's.
  - name: data
    emptyDir: {}
  {{- end }}
{{- end -}}
