package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// The ConfigMap where the API server publishes the CA of its client certificates (the standard source
// for delegated authentication, as aggregated API servers and metrics-server read it).
const (
	clientCANamespace = "kube-system"
	clientCAConfigMap = "extension-apiserver-authentication"
	clientCAKey       = "client-ca-file"
)

// delegatedAuth authenticates callers of the agent's HTTPS endpoints as the API server would: a bearer
// token through a TokenReview, or a client certificate signed by the cluster's client CA; and
// authorizes the request (verb and non-resource path, e.g. get /explain) through a
// SubjectAccessReview. It is controller-runtime's metrics filter (filters.WithAuthenticationAndAuthorization)
// plus client certificates, which kubeconfigs of administrators often hold instead of a token.
type delegatedAuth struct {
	authn authenticator.Request
	authz authorizer.Authorizer
	// clientCA is nil when the client CA could not be read: client certificates are then refused.
	clientCA *dynamiccertificates.ConfigMapCAController
}

// newDelegatedAuth reads the client CA once (so that the first request can use it) and keeps it
// current in the background until ctx ends. Without the CA the agent still serves token holders, and
// says so in its log.
func newDelegatedAuth(ctx context.Context, cfg *rest.Config, httpClient *http.Client, log logr.Logger) (*delegatedAuth, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	backoff := &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}
	authnCfg := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		CacheTTL:                 time.Minute,
		TokenAccessReviewClient:  cs.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      backoff,
	}
	d := &delegatedAuth{}
	ca, err := dynamiccertificates.NewDynamicCAFromConfigMapController("client-ca", clientCANamespace, clientCAConfigMap, clientCAKey, cs)
	if err == nil {
		err = ca.RunOnce(ctx)
	}
	if err != nil {
		log.Info("Client certificates are not accepted on the HTTPS endpoints (bearer tokens are)", "configMap", clientCANamespace+"/"+clientCAConfigMap, "reason", err.Error())
	} else {
		d.clientCA = ca
		authnCfg.ClientCertificateCAContentProvider = ca
		go ca.Run(ctx, 1)
	}
	if d.authn, _, err = authnCfg.New(); err != nil {
		return nil, fmt.Errorf("creating the authenticator: %w", err)
	}
	authzCfg := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cs.AuthorizationV1(),
		AllowCacheTTL:             time.Minute,
		DenyCacheTTL:              10 * time.Second,
		WebhookRetryBackoff:       backoff,
	}
	if d.authz, err = authzCfg.New(); err != nil {
		return nil, fmt.Errorf("creating the authorizer: %w", err)
	}
	return d, nil
}

// tlsOption asks TLS clients for a certificate without requiring one: the authenticator verifies it
// against the client CA, and token holders send none.
func (d *delegatedAuth) tlsOption(c *tls.Config) {
	if d.clientCA != nil {
		c.ClientAuth = tls.RequestClientCert
	}
}

// filter is a metricsserver.Filter: it wraps the metrics handler and every extra handler. An
// unauthenticated caller gets 401, an unauthorized one 403, and neither learns anything else.
func (d *delegatedAuth) filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		res, ok, err := d.authn.AuthenticateRequest(req)
		if err != nil || !ok {
			if err != nil {
				log.V(2).Info("Authentication failed", "path", req.URL.Path, "reason", err.Error())
			}
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		attrs := authorizer.AttributesRecord{User: res.User, Verb: strings.ToLower(req.Method), Path: req.URL.Path}
		decision, reason, err := d.authz.Authorize(req.Context(), attrs)
		if err != nil {
			log.Error(err, "Authorization failed", "user", res.User.GetName(), "path", req.URL.Path)
			http.Error(w, "Authorization failed", http.StatusInternalServerError)
			return
		}
		if decision != authorizer.DecisionAllow {
			log.V(2).Info("Forbidden", "user", res.User.GetName(), "path", req.URL.Path, "reason", reason)
			http.Error(w, fmt.Sprintf("Forbidden: user %q may not %s %s", res.User.GetName(), attrs.Verb, req.URL.Path), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

var _ metricsserver.Filter = (&delegatedAuth{}).filter

// The client CA is read with a field selector on its name, so list and watch are granted for that one
// ConfigMap only.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch,resourceNames=extension-apiserver-authentication
