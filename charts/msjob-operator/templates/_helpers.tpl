{{/* Names and labels shared by every object of the chart. */}}

{{- define "msjob-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "msjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "msjob-operator.labels" -}}
{{ include "msjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "msjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "msjob-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "msjob-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "msjob-operator.peeringName" -}}
{{- default (include "msjob-operator.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/*
What the operator calls, namespace by namespace (verified against the code and on a real cluster by
tests/integration/test_helm.py). pods get/patch: the operator grants each job's reporter a Role with
get/patch on its own pods, and RBAC only lets it grant what it holds itself; configmaps get/list/watch
likewise for the in-place restart agents' Role (list/watch also feed its cache of the gang ConfigMaps).
*/}}
{{- define "msjob-operator.namespacedRules" -}}
- apiGroups: [mindspore.gitee.com]
  resources: [msjobs]
  verbs: [list, watch, get, delete]
- apiGroups: [mindspore.gitee.com]
  resources: [msjobs/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete, get, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch, get, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, patch]
# restartStrategy InPlace: one Lease per member, created by the operator, written by that member's agent
# (the agents' Role grants get and patch on them by name, which the operator must hold itself).
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [list, watch, create, get, patch]
{{- if ne .Values.gangScheduling.mode "never" }}
{{- $groups := dict "volcano" "scheduling.volcano.sh" "scheduler-plugins" "scheduling.x-k8s.io" "workload-api" "scheduling.k8s.io" }}
- apiGroups: [{{ get $groups .Values.gangScheduling.scheduler }}]
  resources: [podgroups]
  verbs: [list, watch, create, get, delete]
{{- if eq .Values.gangScheduling.scheduler "workload-api" }}
# The Workload API's Workload: the template each attempt's PodGroup refers to (created if missing).
- apiGroups: [scheduling.k8s.io]
  resources: [workloads]
  verbs: [create]
{{- end }}
{{- end }}
{{- if .Values.kueue.enabled }}
# Kueue: the jobs' Workloads (created, deactivated while a job is suspended, deleted when it leaves its queue),
# their status (Finished; the quota given back after an eviction), and the LocalQueues that name ClusterQueues.
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [list, watch, get, create, patch, delete]
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads/status]
  verbs: [patch]
- apiGroups: [kueue.x-k8s.io]
  resources: [localqueues]
  verbs: [list, watch]
{{- end }}
{{- end -}}

{{/*
Cluster-scoped reads (with kueue.enabled only): Kueue's ResourceFlavors (the node labels and tolerations an
admission puts on pods) and WorkloadPriorityClasses (a Workload's priority value). In namespaced mode they get
a ClusterRole of their own: read-only, two kinds of Kueue's.
*/}}
{{- define "msjob-operator.kueueClusterRules" -}}
- apiGroups: [kueue.x-k8s.io]
  resources: [resourceflavors, workloadpriorityclasses]
  verbs: [list, watch]
{{- end -}}
