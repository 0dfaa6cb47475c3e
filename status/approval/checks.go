package approval

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/open-policy-agent/opa/v1/rego"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// checkResult is the sum of a request's checks: AccessCheckReady.
type checkResult struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// evaluateChecks evaluates every check of every matched policy and records
// each in status.policies[].matchedChecks. A check already decided (passed
// or rejected) keeps its result: its object may be deleted afterwards.
// Any rejected check rejects the request; any that cannot be evaluated
// fails it (retried); all passed pass it; otherwise it is pending.
func (c *Controller) evaluateChecks(ctx context.Context, ar *v1alpha1.AccessRequest, pod *corev1.Pod) checkResult {
	now := c.now()
	var pending, failed []string
	for i := range ar.Status.Policies {
		p := &ar.Status.Policies[i]
		cg := p.PolicySpec.CheckGrantedPermission
		if cg == nil {
			continue
		}
		for _, rule := range cg.Spec.Checks {
			prev := findCheck(p.MatchedChecks, rule.Name)
			if prev != nil && prev.Condition.Status != string(metav1.ConditionUnknown) && prev.Condition.Reason != v1alpha1.ReasonFailed {
				if prev.Condition.Status == string(metav1.ConditionFalse) {
					return checkResult{metav1.ConditionFalse, v1alpha1.ReasonRejected, prev.Condition.Message}
				}
				continue
			}
			mc := c.check(ctx, pod, p.Name, rule)
			if prev != nil && prev.Condition.Status == mc.Condition.Status && prev.Condition.LastTransitionTime != nil {
				mc.Condition.LastTransitionTime = prev.Condition.LastTransitionTime
			} else {
				mc.Condition.LastTransitionTime = &now
			}
			if prev != nil {
				*prev = mc
			} else {
				p.MatchedChecks = append(p.MatchedChecks, mc)
			}
			switch {
			case mc.Condition.Status == string(metav1.ConditionFalse) && mc.Condition.Reason == v1alpha1.ReasonRejected:
				return checkResult{metav1.ConditionFalse, v1alpha1.ReasonRejected, mc.Condition.Message}
			case mc.Condition.Reason == v1alpha1.ReasonFailed:
				failed = append(failed, mc.Condition.Message)
			case mc.Condition.Status == string(metav1.ConditionUnknown):
				pending = append(pending, mc.Condition.Message)
			}
		}
	}
	switch {
	case len(failed) > 0:
		return checkResult{metav1.ConditionFalse, v1alpha1.ReasonFailed, strings.Join(failed, "; ")}
	case len(pending) > 0:
		return checkResult{metav1.ConditionUnknown, v1alpha1.ReasonPending, strings.Join(pending, "; ")}
	}
	return checkResult{metav1.ConditionTrue, v1alpha1.ReasonPassed, "every check passed"}
}

func findCheck(list []v1alpha1.MatchedCheck, name string) *v1alpha1.MatchedCheck {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// check evaluates one check rule for the pod.
func (c *Controller) check(ctx context.Context, pod *corev1.Pod, policy string, rule v1alpha1.CheckRule) v1alpha1.MatchedCheck {
	mc := v1alpha1.MatchedCheck{Name: rule.Name, Condition: v1alpha1.Condition{Type: v1alpha1.ConditionReady}}
	set := func(status metav1.ConditionStatus, reason, format string, args ...any) v1alpha1.MatchedCheck {
		mc.Condition.Status, mc.Condition.Reason = string(status), reason
		mc.Condition.Message = fmt.Sprintf("AccessPolicy %s check %s: ", policy, rule.Name) + fmt.Sprintf(format, args...)
		return mc
	}
	spec, err := c.checkSpec(ctx, rule)
	if err != nil {
		return set(metav1.ConditionFalse, v1alpha1.ReasonFailed, "%v", err)
	}
	ref := spec.Selector.ObjectRef
	mc.Ref = corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: pod.Namespace}
	sel, err := renderSelector(spec.Selector.LabelSelector, pod)
	if err != nil {
		// The pod lacks what the check looks for (such as the PipelineRun
		// label): no object can ever approve it.
		return set(metav1.ConditionFalse, v1alpha1.ReasonRejected, "%v", err)
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || ref.Kind == "" {
		return set(metav1.ConditionFalse, v1alpha1.ReasonFailed, "selector.objectRef needs an apiVersion and a kind")
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gv.WithKind(ref.Kind + "List"))
	err = c.opts.Client.List(ctx, list, client.InNamespace(pod.Namespace), client.MatchingLabelsSelector{Selector: sel})
	if meta.IsNoMatchError(err) {
		return set(metav1.ConditionFalse, v1alpha1.ReasonFailed, "the kind %s of %s is not installed in the cluster", ref.Kind, ref.APIVersion)
	}
	if err != nil {
		return set(metav1.ConditionFalse, v1alpha1.ReasonFailed, "listing %s: %v", ref.Kind, err)
	}
	if len(list.Items) == 0 {
		return set(metav1.ConditionUnknown, v1alpha1.ReasonPending, "waiting for a %s in namespace %s with labels %s", ref.Kind, pod.Namespace, sel)
	}
	var waiting *unstructured.Unstructured
	for i := range list.Items {
		obj := &list.Items[i]
		st, err := objectState(ctx, obj, spec.State)
		if err != nil {
			return set(metav1.ConditionFalse, v1alpha1.ReasonFailed, "%s %s: %v", ref.Kind, obj.GetName(), err)
		}
		switch st {
		case metav1.ConditionFalse:
			mc.Ref.Name, mc.Ref.UID = obj.GetName(), obj.GetUID()
			return set(metav1.ConditionFalse, v1alpha1.ReasonRejected, "%s %s/%s rejected the request", ref.Kind, pod.Namespace, obj.GetName())
		case metav1.ConditionUnknown:
			if waiting == nil {
				waiting = obj
			}
		}
	}
	if waiting != nil {
		mc.Ref.Name, mc.Ref.UID = waiting.GetName(), waiting.GetUID()
		return set(metav1.ConditionUnknown, v1alpha1.ReasonPending, "waiting for %s %s/%s to be approved", ref.Kind, pod.Namespace, waiting.GetName())
	}
	first := &list.Items[0]
	mc.Ref.Name, mc.Ref.UID = first.GetName(), first.GetUID()
	return set(metav1.ConditionTrue, v1alpha1.ReasonPassed, "%s %s/%s approved the request", ref.Kind, pod.Namespace, first.GetName())
}

// checkSpec is the rule's own spec or the one in its ConfigMap, which is
// read from the service's namespace only.
func (c *Controller) checkSpec(ctx context.Context, rule v1alpha1.CheckRule) (*v1alpha1.CheckRuleSpec, error) {
	switch {
	case rule.Spec != nil && rule.Ref != nil:
		return nil, fmt.Errorf("give ref or spec, not both")
	case rule.Spec != nil:
		return rule.Spec, nil
	case rule.Ref == nil || rule.Ref.ConfigMap.Name == "":
		return nil, fmt.Errorf("ref.configMap.name or spec is required")
	}
	data, err := c.template(ctx, rule.Ref.ConfigMap.Name, "spec")
	if err != nil {
		return nil, err
	}
	// Upstream's templates write selector.labels for matchLabels.
	var spec struct {
		v1alpha1.CheckRuleSpec `json:",inline"`
		Selector               struct {
			v1alpha1.CheckSelector `json:",inline"`
			Labels                 map[string]string `json:"labels,omitempty"`
		} `json:"selector"`
	}
	if err := yaml.UnmarshalStrict([]byte(data), &spec); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s data.spec: %w", c.opts.Namespace, rule.Ref.ConfigMap.Name, err)
	}
	out := spec.CheckRuleSpec
	out.Selector = spec.Selector.CheckSelector
	for k, v := range spec.Selector.Labels {
		if out.Selector.MatchLabels == nil {
			out.Selector.MatchLabels = map[string]string{}
		}
		out.Selector.MatchLabels[k] = v
	}
	return &out, nil
}

// template reads data[key] of a template ConfigMap in the service's namespace.
func (c *Controller) template(ctx context.Context, name, key string) (string, error) {
	cm := &corev1.ConfigMap{}
	if err := c.opts.Client.Get(ctx, types.NamespacedName{Namespace: c.opts.Namespace, Name: name}, cm); err != nil {
		return "", fmt.Errorf("reading template ConfigMap %s/%s: %w", c.opts.Namespace, name, err)
	}
	data, ok := cm.Data[key]
	if !ok || strings.TrimSpace(data) == "" {
		return "", fmt.Errorf("template ConfigMap %s/%s has no data.%s", c.opts.Namespace, name, key)
	}
	return data, nil
}

// renderSelector evaluates the {JSONPath} expressions in the selector's
// values on {"object": pod}. An expression that yields nothing is an
// error: an empty value must never select objects without the label.
func renderSelector(ls metav1.LabelSelector, pod *corev1.Pod) (labels.Selector, error) {
	input, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"object": input}
	out := ls.DeepCopy()
	for k, v := range out.MatchLabels {
		if out.MatchLabels[k], err = expand(v, data); err != nil {
			return nil, fmt.Errorf("selector label %s: %w", k, err)
		}
	}
	for i := range out.MatchExpressions {
		for j, v := range out.MatchExpressions[i].Values {
			if out.MatchExpressions[i].Values[j], err = expand(v, data); err != nil {
				return nil, fmt.Errorf("selector expression %s: %w", out.MatchExpressions[i].Key, err)
			}
		}
	}
	return metav1.LabelSelectorAsSelector(out)
}

// doubleQuotedKey is ["key"], which client-go's JSONPath does not read;
// upstream's templates write it, and ['key'] means the same.
var doubleQuotedKey = regexp.MustCompile(`\["([^"\]]*)"\]`)

// expand evaluates s as a JSONPath template when it holds a {expression}.
func expand(s string, data map[string]any) (string, error) {
	if !strings.Contains(s, "{") {
		return s, nil
	}
	j := jsonpath.New("value")
	if err := j.Parse(doubleQuotedKey.ReplaceAllString(s, "['$1']")); err != nil {
		return "", fmt.Errorf("bad expression %q: %w", s, err)
	}
	var b bytes.Buffer
	if err := j.Execute(&b, data); err != nil || b.Len() == 0 {
		return "", fmt.Errorf("%q yields no value for the pod", s)
	}
	return b.String(), nil
}

// objectState reads a check object's state: by the Rego rule when given
// (package approval, status.state), else status.state. approved and passed
// are True, rejected is False, anything else Unknown.
func objectState(ctx context.Context, obj *unstructured.Unstructured, st *v1alpha1.CheckState) (metav1.ConditionStatus, error) {
	var state string
	if st != nil && strings.TrimSpace(st.Rego) != "" {
		rs, err := rego.New(rego.Query("data.approval.status.state"), rego.Module("check.rego", st.Rego), rego.Input(obj.Object)).Eval(ctx)
		if err != nil {
			return "", fmt.Errorf("state.rego: %w", err)
		}
		if len(rs) > 0 && len(rs[0].Expressions) > 0 {
			state, _ = rs[0].Expressions[0].Value.(string)
		}
	} else {
		state, _, _ = unstructured.NestedString(obj.Object, "status", "state")
	}
	switch strings.ToLower(state) {
	case "approved", "passed":
		return metav1.ConditionTrue, nil
	case "rejected":
		return metav1.ConditionFalse, nil
	}
	return metav1.ConditionUnknown, nil
}
