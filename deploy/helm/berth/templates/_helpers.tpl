{{/* Names: the release's full name, cut to 63 characters (DNS label). */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding BERTH_SECRET_KEY and BERTH_ADMIN_PASSWORD, if any. */}}
{{- define "berth.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else if or .Values.secrets.secretKey .Values.secrets.adminPassword -}}
{{- include "berth.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "berth.etcd" -}}
{{- if eq .Values.store.backend "etcd" }}true{{ end -}}
{{- end -}}

{{/* Pods: 1 with Badger, replicas (default 3) with etcd. */}}
{{- define "berth.replicas" -}}
{{- if include "berth.etcd" . -}}
{{- if kindIs "invalid" .Values.replicas }}3{{ else }}{{ .Values.replicas }}{{ end -}}
{{- else -}}
1
{{- end -}}
{{- end -}}

{{/*
Checks of combinations the schema cannot express. Included by every
workload template, so a bad combination stops rendering with one message.
*/}}
{{- define "berth.validate" -}}
{{- $etcd := include "berth.etcd" . -}}
{{- if and (not $etcd) (not (kindIs "invalid" .Values.replicas)) (ne (int .Values.replicas) 1) -}}
{{- fail (printf "replicas: %v with store.backend=badger: a Badger store belongs to one process; set store.backend=etcd to run several replicas" .Values.replicas) -}}
{{- end -}}
{{- if $etcd -}}
{{- if not .Values.store.etcd.endpoints -}}
{{- fail "store.etcd.endpoints is required with store.backend=etcd (e.g. --set 'store.etcd.endpoints={https://etcd-0.etcd:2379}')" -}}
{{- end -}}
{{- if not (or .Values.secrets.existingSecret .Values.secrets.secretKey) -}}
{{- fail "secrets.secretKey or secrets.existingSecret is required with store.backend=etcd: every replica must share one BERTH_SECRET_KEY (generate one with: openssl rand -hex 32)" -}}
{{- end -}}
{{- end -}}
{{- range $k := list "secret_key" "admin_password" -}}
{{- if hasKey $.Values.config $k -}}
{{- fail (printf "config.%s must not be set: the ConfigMap is not secret; use secrets.existingSecret (or secrets.secretKey / secrets.adminPassword)" $k) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "data_dir" "http" "https" -}}
{{- if hasKey $.Values.config $k -}}
{{- fail (printf "config.%s is set by the chart (listeners on containerPorts, data on the volume); remove it" $k) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.config.store (or (hasKey .Values.config.store "backend") (hasKey .Values.config.store "etcd")) -}}
{{- fail "config.store.backend and config.store.etcd are set by the chart: use the store values instead" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.serviceMonitor.bearerTokenSecret.name) -}}
{{- fail "serviceMonitor.bearerTokenSecret.name is required with serviceMonitor.enabled: /metrics needs an API key with metrics:read (see docs/operating.md)" -}}
{{- end -}}
{{- end -}}

{{/* The pod template shared by the StatefulSet (Badger) and the Deployment (etcd). */}}
{{- define "berth.podTemplate" -}}
{{- $etcd := include "berth.etcd" . -}}
{{- $secret := include "berth.secretName" . -}}
metadata:
  labels:
    {{- include "berth.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A changed configuration rolls the pods. No such checksum of the
    # Secret: a hash of a rendering holding a weak admin password could be
    # brute-forced by anyone who may read the workload, and both secrets
    # matter only at start (a new secret key cannot read the old data).
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "berth.serviceAccountName" . }}
  # Berth never calls the Kubernetes API of the cluster it runs in.
  automountServiceAccountToken: false
  # Service links would put variables such as BERTH_PORT into the
  # environment, where BERTH_* names are Berth's configuration.
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ .Values.securityContext.uid }}
    runAsGroup: {{ .Values.securityContext.gid }}
    fsGroup: {{ .Values.securityContext.gid }}
    fsGroupChangePolicy: OnRootMismatch
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: berth
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      # Spelled out rather than left to the image's ENTRYPOINT and CMD.
      command: [/usr/local/bin/berth]
      args: [serve, --config, /etc/berth/berth.yaml]
      ports:
        - name: http
          containerPort: {{ .Values.containerPorts.http }}
          protocol: TCP
        - name: https
          containerPort: {{ .Values.containerPorts.https }}
          protocol: TCP
      env:
        # What differs between the two modes is set here; the rest is in
        # the ConfigMap.
        - name: BERTH_STORE_BACKEND
          value: {{ .Values.store.backend | quote }}
        {{- if $etcd }}
        - name: BERTH_STORE_ETCD_ENDPOINTS
          value: {{ join "," .Values.store.etcd.endpoints | quote }}
        - name: BERTH_STORE_ETCD_PREFIX
          value: {{ .Values.store.etcd.prefix | quote }}
        - name: BERTH_STORE_ETCD_DIAL_TIMEOUT
          value: {{ .Values.store.etcd.dialTimeout | quote }}
        - name: BERTH_STORE_ETCD_REQUEST_TIMEOUT
          value: {{ .Values.store.etcd.requestTimeout | quote }}
        {{- if .Values.store.etcd.tls.existingSecret }}
        - name: BERTH_STORE_ETCD_TLS_CA_FILE
          value: /etc/berth-etcd-tls/ca.crt
        - name: BERTH_STORE_ETCD_TLS_CERT_FILE
          value: /etc/berth-etcd-tls/tls.crt
        - name: BERTH_STORE_ETCD_TLS_KEY_FILE
          value: /etc/berth-etcd-tls/tls.key
        {{- end }}
        {{- end }}
        {{- if $secret }}
        - name: BERTH_SECRET_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $secret }}
              key: {{ .Values.secrets.secretKeyKey }}
              # With Badger, Berth generates a key on the volume when none
              # is given; replicas on etcd must all have the same one.
              optional: {{ not $etcd }}
        - name: BERTH_ADMIN_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ $secret }}
              key: {{ .Values.secrets.adminPasswordKey }}
              optional: true
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        initialDelaySeconds: {{ .Values.probes.liveness.initialDelaySeconds }}
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        initialDelaySeconds: {{ .Values.probes.readiness.initialDelaySeconds }}
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ .Values.securityContext.uid }}
        runAsGroup: {{ .Values.securityContext.gid }}
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        privileged: false
        capabilities:
          drop: [ALL]
        seccompProfile:
          type: RuntimeDefault
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/berth
          readOnly: true
        - name: data
          mountPath: /var/lib/berth
        # Plugins (go-plugin) listen on unix sockets in the temp directory;
        # the root filesystem is read-only.
        - name: tmp
          mountPath: /tmp
        {{- if and $etcd .Values.store.etcd.tls.existingSecret }}
        - name: etcd-tls
          mountPath: /etc/berth-etcd-tls
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "berth.fullname" . }}
    - name: tmp
      emptyDir: {}
    {{- if $etcd }}
    # With etcd the data directory holds only the admin socket and the lock
    # file: nothing that must outlive the pod.
    - name: data
      emptyDir: {}
    {{- if .Values.store.etcd.tls.existingSecret }}
    - name: etcd-tls
      secret:
        secretName: {{ .Values.store.etcd.tls.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ .Values.store.etcd.tls.caKey }}
            path: ca.crt
          - key: {{ .Values.store.etcd.tls.certKey }}
            path: tls.crt
          - key: {{ .Values.store.etcd.tls.keyKey }}
            path: tls.key
    {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if and $etcd (eq .Values.podAntiAffinity "hard") }}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "berth.selectorLabels" . | nindent 14 }}
  {{- else if and $etcd (eq .Values.podAntiAffinity "soft") }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "berth.selectorLabels" . | nindent 16 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    - {{ toYaml (merge (dict) . (dict "labelSelector" (dict "matchLabels" (include "berth.selectorLabels" $ | fromYaml)))) | indent 6 | trim }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
