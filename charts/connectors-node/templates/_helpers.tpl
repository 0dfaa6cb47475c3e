{{- define "connectors-node.validate" -}}
{{- if not (has .Values.topology (list "node" "split")) -}}
{{- fail (printf "topology %q: want node or split" .Values.topology) -}}
{{- end -}}
{{- end -}}

{{- define "connectors-node.publicURL" -}}
{{- default (printf "http://%s.%s.svc" .Values.serviceName .Values.namespace) .Values.publicURL -}}
{{- end -}}

{{- define "connectors-node.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- define "connectors-node.labels" -}}
app.kubernetes.io/name: connectors-node
{{- end -}}

{{- /* The Connectors API gateway's flags, for the container that serves the proxy role. */ -}}
{{- define "connectors-node.apiArgs" -}}
{{- if .Values.connectorsAPI.enabled }}
- --connectors-api-listen=:{{ .Values.connectorsAPI.port }}
{{- if .Values.connectorsAPI.permissions }}
- --enable-connector-apis-permissions
{{- end }}
{{- if .Values.connectorsAPI.writePassthrough }}
- --enable-connector-apis-write-passthrough
{{- end }}
{{- end }}
{{- end -}}

{{- define "connectors-node.apiPort" -}}
{{- if .Values.connectorsAPI.enabled }}
- name: connectors-api
  containerPort: {{ .Values.connectorsAPI.port }}
  protocol: TCP
{{- end }}
{{- end -}}
