"""Go declarations of the pod template's types (k8s.io/api 1.32), for the template hash.

Each struct lists its fields in declaration order as ``GoName jsonName GoType``;
unexported fields are listed too, since go-spew prints them. Only the types a
pod template commonly holds are described; the hash falls back to JSON for the
others (see :mod:`.podhash`).
"""

from __future__ import annotations

_DECLS = """
v1.PodTemplateSpec
  ObjectMeta metadata v1.ObjectMeta
  Spec spec v1.PodSpec
v1.ObjectMeta
  Name name string
  GenerateName generateName string
  Namespace namespace string
  SelfLink selfLink string
  UID uid types.UID
  ResourceVersion resourceVersion string
  Generation generation int64
  CreationTimestamp creationTimestamp v1.Time
  DeletionTimestamp deletionTimestamp *v1.Time
  DeletionGracePeriodSeconds deletionGracePeriodSeconds *int64
  Labels labels map[string]string
  Annotations annotations map[string]string
  OwnerReferences ownerReferences []v1.OwnerReference
  Finalizers finalizers []string
  ManagedFields managedFields []v1.ManagedFieldsEntry
v1.PodSpec
  Volumes volumes []v1.Volume
  InitContainers initContainers []v1.Container
  Containers containers []v1.Container
  EphemeralContainers ephemeralContainers []v1.EphemeralContainer
  RestartPolicy restartPolicy v1.RestartPolicy
  TerminationGracePeriodSeconds terminationGracePeriodSeconds *int64
  ActiveDeadlineSeconds activeDeadlineSeconds *int64
  DNSPolicy dnsPolicy v1.DNSPolicy
  NodeSelector nodeSelector map[string]string
  ServiceAccountName serviceAccountName string
  DeprecatedServiceAccount serviceAccount string
  AutomountServiceAccountToken automountServiceAccountToken *bool
  NodeName nodeName string
  HostNetwork hostNetwork bool
  HostPID hostPID bool
  HostIPC hostIPC bool
  ShareProcessNamespace shareProcessNamespace *bool
  SecurityContext securityContext *v1.PodSecurityContext
  ImagePullSecrets imagePullSecrets []v1.LocalObjectReference
  Hostname hostname string
  Subdomain subdomain string
  Affinity affinity *v1.Affinity
  SchedulerName schedulerName string
  Tolerations tolerations []v1.Toleration
  HostAliases hostAliases []v1.HostAlias
  PriorityClassName priorityClassName string
  Priority priority *int32
  DNSConfig dnsConfig *v1.PodDNSConfig
  ReadinessGates readinessGates []v1.PodReadinessGate
  RuntimeClassName runtimeClassName *string
  EnableServiceLinks enableServiceLinks *bool
  PreemptionPolicy preemptionPolicy *v1.PreemptionPolicy
  Overhead overhead v1.ResourceList
  TopologySpreadConstraints topologySpreadConstraints []v1.TopologySpreadConstraint
  SetHostnameAsFQDN setHostnameAsFQDN *bool
  OS os *v1.PodOS
  HostUsers hostUsers *bool
  SchedulingGates schedulingGates []v1.PodSchedulingGate
  ResourceClaims resourceClaims []v1.PodResourceClaim
  Resources resources *v1.ResourceRequirements
v1.Container
  Name name string
  Image image string
  Command command []string
  Args args []string
  WorkingDir workingDir string
  Ports ports []v1.ContainerPort
  EnvFrom envFrom []v1.EnvFromSource
  Env env []v1.EnvVar
  Resources resources v1.ResourceRequirements
  ResizePolicy resizePolicy []v1.ContainerResizePolicy
  RestartPolicy restartPolicy *v1.ContainerRestartPolicy
  VolumeMounts volumeMounts []v1.VolumeMount
  VolumeDevices volumeDevices []v1.VolumeDevice
  LivenessProbe livenessProbe *v1.Probe
  ReadinessProbe readinessProbe *v1.Probe
  StartupProbe startupProbe *v1.Probe
  Lifecycle lifecycle *v1.Lifecycle
  TerminationMessagePath terminationMessagePath string
  TerminationMessagePolicy terminationMessagePolicy v1.TerminationMessagePolicy
  ImagePullPolicy imagePullPolicy v1.PullPolicy
  SecurityContext securityContext *v1.SecurityContext
  Stdin stdin bool
  StdinOnce stdinOnce bool
  TTY tty bool
v1.ContainerPort
  Name name string
  HostPort hostPort int32
  ContainerPort containerPort int32
  Protocol protocol v1.Protocol
  HostIP hostIP string
v1.EnvVar
  Name name string
  Value value string
  ValueFrom valueFrom *v1.EnvVarSource
v1.EnvVarSource
  FieldRef fieldRef *v1.ObjectFieldSelector
  ResourceFieldRef resourceFieldRef *v1.ResourceFieldSelector
  ConfigMapKeyRef configMapKeyRef *v1.ConfigMapKeySelector
  SecretKeyRef secretKeyRef *v1.SecretKeySelector
v1.ObjectFieldSelector
  APIVersion apiVersion string
  FieldPath fieldPath string
v1.ConfigMapKeySelector
  LocalObjectReference - v1.LocalObjectReference
  Key key string
  Optional optional *bool
v1.SecretKeySelector
  LocalObjectReference - v1.LocalObjectReference
  Key key string
  Optional optional *bool
v1.LocalObjectReference
  Name name string
v1.ResourceRequirements
  Limits limits v1.ResourceList
  Requests requests v1.ResourceList
  Claims claims []v1.ResourceClaim
v1.VolumeMount
  Name name string
  ReadOnly readOnly bool
  RecursiveReadOnly recursiveReadOnly *v1.RecursiveReadOnlyMode
  MountPath mountPath string
  SubPath subPath string
  MountPropagation mountPropagation *v1.MountPropagationMode
  SubPathExpr subPathExpr string
v1.Probe
  ProbeHandler - v1.ProbeHandler
  InitialDelaySeconds initialDelaySeconds int32
  TimeoutSeconds timeoutSeconds int32
  PeriodSeconds periodSeconds int32
  SuccessThreshold successThreshold int32
  FailureThreshold failureThreshold int32
  TerminationGracePeriodSeconds terminationGracePeriodSeconds *int64
v1.ProbeHandler
  Exec exec *v1.ExecAction
  HTTPGet httpGet *v1.HTTPGetAction
  TCPSocket tcpSocket *v1.TCPSocketAction
  GRPC grpc *v1.GRPCAction
v1.ExecAction
  Command command []string
v1.HTTPGetAction
  Path path string
  Port port intstr.IntOrString
  Host host string
  Scheme scheme v1.URIScheme
  HTTPHeaders httpHeaders []v1.HTTPHeader
v1.HTTPHeader
  Name name string
  Value value string
v1.TCPSocketAction
  Port port intstr.IntOrString
  Host host string
v1.PodSecurityContext
  SELinuxOptions seLinuxOptions *v1.SELinuxOptions
  WindowsOptions windowsOptions *v1.WindowsSecurityContextOptions
  RunAsUser runAsUser *int64
  RunAsGroup runAsGroup *int64
  RunAsNonRoot runAsNonRoot *bool
  SupplementalGroups supplementalGroups []int64
  SupplementalGroupsPolicy supplementalGroupsPolicy *v1.SupplementalGroupsPolicy
  FSGroup fsGroup *int64
  Sysctls sysctls []v1.Sysctl
  FSGroupChangePolicy fsGroupChangePolicy *v1.PodFSGroupChangePolicy
  SeccompProfile seccompProfile *v1.SeccompProfile
  AppArmorProfile appArmorProfile *v1.AppArmorProfile
  SELinuxChangePolicy seLinuxChangePolicy *v1.PodSELinuxChangePolicy
v1.Toleration
  Key key string
  Operator operator v1.TolerationOperator
  Value value string
  Effect effect v1.TaintEffect
  TolerationSeconds tolerationSeconds *int64
"""

ALIASES: dict[str, str] = {
    "types.UID": "string", "v1.RestartPolicy": "string", "v1.DNSPolicy": "string",
    "v1.Protocol": "string", "v1.PullPolicy": "string", "v1.TerminationMessagePolicy": "string",
    "v1.URIScheme": "string", "v1.TolerationOperator": "string", "v1.TaintEffect": "string",
    "v1.ResourceName": "string", "v1.PreemptionPolicy": "string",
    "v1.ContainerRestartPolicy": "string", "v1.MountPropagationMode": "string",
    "v1.RecursiveReadOnlyMode": "string", "v1.SupplementalGroupsPolicy": "string",
    "v1.PodFSGroupChangePolicy": "string", "v1.PodSELinuxChangePolicy": "string",
    "resource.Format": "string",
    "v1.ResourceList": "map[v1.ResourceName]resource.Quantity",
}


def _parse(decls: str) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    current: list[tuple[str, str, str]] = []
    for line in decls.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = out[line.strip()] = []
            continue
        name, json_name, go_type = line.split()
        current.append((name, json_name, go_type))
    return out


STRUCTS = _parse(_DECLS)
