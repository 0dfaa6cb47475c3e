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
