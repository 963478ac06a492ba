// `agnhost webhook`: the admission webhook server of the upstream e2e test
// image (kubernetes test/images/agnhost/webhook), the subset kin's tests
// use, with upstream's paths and answers:
//
//   /always-allow-delay-5s  allows, after 5 s
//   /always-deny            denies: "this webhook denies all requests"
//   /add-label              JSONPatch adding label added-label=yes
//   /pods                   denies pods with label webhook-e2e-test=webhook-disallow
//                           ("the pod contains unwanted label;") or a container whose
//                           name contains "webhook-disallow" ("the pod contains
//                           unwanted container name;")
//   /mutating-pods          pods named webhook-to-be-mutated get the init container
//                           webhook-added-init-container (image webhook-added-image)
//   /configmaps             denies ConfigMaps with data webhook-e2e-test=webhook-disallow
//   /mutating-configmaps    mutation-start=yes adds mutation-stage-1=yes, which adds
//                           mutation-stage-2=yes
//   /readyz                 200 "ok"
//
// Flags: --port (443), --tls-cert-file, --tls-private-key-file (HTTPS
// needs both). Requests must be Content-Type application/json
// admission.k8s.io/v1 AdmissionReviews (v1beta1 is not served); the answer
// is an AdmissionReview of the same version with the request's uid.
#pragma once

#include <string>
#include <vector>

#include "base/yaml.h"

namespace kin::agnhost {

// Runs the server until SIGTERM/SIGINT. Returns the exit code.
int RunWebhook(const std::vector<std::string>& args);

// The AdmissionResponse `path` gives `review` (uid not set); null when the
// path is not served. Pure, for tests; /always-allow-delay-5s answers at
// once here.
Json WebhookResponse(const std::string& path, const Json& review);

}  // namespace kin::agnhost
