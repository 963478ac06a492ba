#include "runtime/agnhost_webhook.h"

#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "base/error.h"
#include "base/http_server.h"
#include "base/strings.h"

namespace kin::agnhost {

namespace {

Json Allowed() { return {{"allowed", true}}; }
Json Denied(Json status) { return {{"allowed", false}, {"status", std::move(status)}}; }
Json WithPatch(Json response, const Json& patch) {
  response["patchType"] = "JSONPatch";
  response["patch"] = Base64Encode(patch.dump());
  return response;
}

// toV1AdmissionResponse(err): the error as the denial's message.
Json ErrorResponse(const std::string& message) { return Denied({{"message", message}}); }

bool IsResource(const Json& req, const std::string& resource) {
  return req.value("resource", Json::object()) ==
         Json({{"group", ""}, {"version", "v1"}, {"resource", resource}});
}

Json Labels(const Json& obj) {
  const Json& m = obj.value("metadata", Json::object());
  const Json& l = m.is_object() ? m.value("labels", Json::object()) : Json::object();
  return l.is_object() ? l : Json::object();
}

// addlabel.go.
Json AddLabel(const Json& req) {
  Json labels = Labels(req.value("object", Json::object()));
  if (labels.empty()) {
    return WithPatch(Allowed(), Json::array({{{"op", "add"},
                                              {"path", "/metadata/labels"},
                                              {"value", {{"added-label", "yes"}}}}}));
  }
  if (!labels.contains("added-label")) {
    return WithPatch(Allowed(), Json::array({{{"op", "add"},
                                              {"path", "/metadata/labels/added-label"},
                                              {"value", "yes"}}}));
  }
  if (labels["added-label"] != "yes") {
    return WithPatch(Allowed(), Json::array({{{"op", "replace"},
                                              {"path", "/metadata/labels/added-label"},
                                              {"value", "yes"}}}));
  }
  return Allowed();
}

// pods.go admitPods.
Json AdmitPods(const Json& req) {
  if (!IsResource(req, "pods")) return ErrorResponse("expect resource to be { v1 pods}");
  const Json& pod = req.value("object", Json::object());
  std::string msg;
  bool allowed = true;
  Json labels = Labels(pod);
  if (labels.value("webhook-e2e-test", "") == "webhook-disallow") {
    allowed = false;
    msg += "the pod contains unwanted label; ";
  }
  const Json& spec = pod.value("spec", Json::object());
  for (const auto& c : spec.value("containers", Json::array())) {
    if (c.value("name", "").find("webhook-disallow") != std::string::npos) {
      allowed = false;
      msg += "the pod contains unwanted container name; ";
    }
  }
  if (allowed) return Allowed();
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  return Denied({{"message", msg}});
}

// pods.go mutatePods.
Json MutatePods(const Json& req) {
  if (!IsResource(req, "pods")) return ErrorResponse("expect resource to be { v1 pods}");
  const Json& pod = req.value("object", Json::object());
  if (pod.value("metadata", Json::object()).value("name", "") != "webhook-to-be-mutated") {
    return Allowed();
  }
  for (const auto& c : pod.value("spec", Json::object()).value("initContainers", Json::array())) {
    if (c.value("name", "") == "webhook-added-init-container") return Allowed();
  }
  return WithPatch(Allowed(), Json::array({{{"op", "add"},
                                            {"path", "/spec/initContainers"},
                                            {"value",
                                             Json::array({{{"image", "webhook-added-image"},
                                                           {"name", "webhook-added-init-container"},
                                                           {"resources", Json::object()}}})}}}));
}

// configmap.go admitConfigMaps and mutateConfigmaps.
Json AdmitConfigMaps(const Json& req) {
  if (!IsResource(req, "configmaps")) return ErrorResponse("expect resource to be { v1 configmaps}");
  const Json& data = req.value("object", Json::object()).value("data", Json::object());
  if (data.is_object() && data.value("webhook-e2e-test", "") == "webhook-disallow") {
    return Denied({{"reason", "the configmap contains unwanted key and value"}});
  }
  return Allowed();
}

Json MutateConfigMaps(const Json& req) {
  if (!IsResource(req, "configmaps")) return ErrorResponse("expect resource to be { v1 configmaps}");
  const Json& data = req.value("object", Json::object()).value("data", Json::object());
  if (!data.is_object()) return Allowed();
  Json patch;
  if (data.value("mutation-start", "") == "yes") {
    patch = Json::array({{{"op", "add"}, {"path", "/data/mutation-stage-1"}, {"value", "yes"}}});
  }
  if (data.value("mutation-stage-1", "") == "yes") {
    patch = Json::array({{{"op", "add"}, {"path", "/data/mutation-stage-2"}, {"value", "yes"}}});
  }
  return patch.is_null() ? Allowed() : WithPatch(Allowed(), patch);
}

}  // namespace

Json WebhookResponse(const std::string& path, const Json& review) {
  const Json& req = review.value("request", Json::object());
  if (path == "/always-allow-delay-5s") return Allowed();
  if (path == "/always-deny") return Denied({{"message", "this webhook denies all requests"}});
  if (path == "/add-label") return AddLabel(req);
  if (path == "/pods") return AdmitPods(req);
  if (path == "/mutating-pods") return MutatePods(req);
  if (path == "/configmaps") return AdmitConfigMaps(req);
  if (path == "/mutating-configmaps") return MutateConfigMaps(req);
  return Json();
}

int RunWebhook(const std::vector<std::string>& args) {
  std::string port = "443", cert, key;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.rfind("--", 0) == 0) a = a.substr(2);
    else if (a.rfind("-", 0) == 0) a = a.substr(1);
    std::string name = a, value;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    }
    if (name == "port") port = value;
    else if (name == "tls-cert-file") cert = value;
    else if (name == "tls-private-key-file") key = value;
    else throw Error::Invalid("unknown flag: --" + name);
  }
  // As Go's flag package answers ParseInt errors.
  int port_num = std::atoi(port.c_str());
  if (port_num <= 0 || port_num > 65535 || std::to_string(port_num) != port) {
    throw Error::Invalid("invalid value \"" + port + "\" for flag -port");
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);

  http::ServerOptions opts;
  opts.host = "0.0.0.0";
  opts.port = port_num;
  if (!cert.empty() || !key.empty()) {
    opts.tls = http::TlsServerOptions{.cert_file = cert, .key_file = key};
  }
  http::Server server(opts, [](http::Request& r, http::Response& res) {
    if (r.path == "/readyz") {
      res.Set(200, "text/plain; charset=utf-8", "ok");
      return;
    }
    if (r.Header("Content-Type") != "application/json") {
      // Upstream logs and answers an empty 200.
      std::cerr << "contentType=" << r.Header("Content-Type") << ", expect application/json"
                << std::endl;
      res.Set(200, "text/plain; charset=utf-8", "");
      return;
    }
    Json review = Json::parse(r.body, nullptr, false);
    if (review.is_discarded() || !review.is_object()) {
      res.Set(400, "text/plain; charset=utf-8", "Request could not be decoded: invalid JSON\n");
      return;
    }
    if (review.value("apiVersion", "") != "admission.k8s.io/v1" ||
        review.value("kind", "") != "AdmissionReview") {
      res.Set(400, "text/plain; charset=utf-8",
              "Unsupported group version kind: " + review.value("apiVersion", "") + ", Kind=" +
                  review.value("kind", "") + "\n");
      return;
    }
    Json response = WebhookResponse(r.path, review);
    if (response.is_null()) {
      res.Set(404, "text/plain; charset=utf-8", "404 page not found\n");
      return;
    }
    if (r.path == "/always-allow-delay-5s") std::this_thread::sleep_for(std::chrono::seconds(5));
    response["uid"] = review.value("request", Json::object()).value("uid", "");
    Json out = {{"kind", "AdmissionReview"},
                {"apiVersion", "admission.k8s.io/v1"},
                {"response", response}};
    res.Set(200, "application/json", out.dump());
  });
  server.Start();
  std::cerr << "Starting webhook server on port " << port_num << std::endl;
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  server.Stop();
  return 0;
}

}  // namespace kin::agnhost
