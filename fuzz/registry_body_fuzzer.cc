// Fuzzes what the API server does with a request body once it is JSON: the
// Registry's Create of an object (metadata, defaulting, validation, the
// Service IP and NodePort allocators, storage), then Update of the object
// it made with the same body (the update path's defaulting and validation
// against a stored object), and the status subresource's Update where the
// resource has one.
//
// Input: one selector byte, then the body. The body must be a JSON object,
// as rest.cc's DecodeBody requires (anything else is its 400 before the
// registry sees it). The resource is the one the body's apiVersion and kind
// name, when kin stores it (so seeds do not depend on the table's order);
// else the selector's low 7 bits pick among the stored resources. The
// selector's top bit makes the create a dry run.
//
// An Error is an answer (4xx/5xx), and so is a Json::exception: rest.cc
// turns one into 400 "invalid object". Any other exception escapes and is
// a finding, as is a crash, a sanitizer report or a hang.
//
// One Store and Registry per process, in a temp dir (tmpfs when there is
// one: SQLite's syncs cost nothing there). Whatever an input created is
// deleted again (grace 0, finalizers cleared first), so the store does not
// grow with the run and a name an input picks is free for the next one.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "apiserver/registry.h"
#include "apiserver/store.h"
#include "base/error.h"
#include "client/resources.h"

namespace {

using kin::Error;
using kin::Json;
using kin::ResourceInfo;
using kin::apiserver::Registry;
using kin::apiserver::Store;

constexpr const char* kNamespace = "fuzz";

bool HasVerb(const ResourceInfo& r, const char* verb) {
  for (const std::string& v : r.verbs) {
    if (v == verb) return true;
  }
  return false;
}

struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<Registry> registry;
  std::vector<const ResourceInfo*> stored;  // what Create can store

  Fixture() {
    const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : nullptr;
    std::string tmpl = std::string(base ? base : std::filesystem::temp_directory_path().c_str()) +
                       "/kin-registry-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) abort();
    dir = tmpl;
    kin::apiserver::StoreOptions so;
    so.index_fields = kin::apiserver::IndexFields;
    store = Store::Open((dir / "kin.db").string(), so);
    registry = std::make_unique<Registry>(*store, kin::apiserver::RegistryOptions{});
    registry->Bootstrap();
    registry->Create(
        kin::NamespacesResource(), "",
        {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", kNamespace}}}}, {});
    for (const ResourceInfo& r : kin::AllResources()) {
      // Access reviews and the like are answered elsewhere and never stored.
      if (HasVerb(r, "create") && HasVerb(r, "get") && HasVerb(r, "update")) stored.push_back(&r);
    }
    if (stored.empty()) abort();
  }
  ~Fixture() {
    registry.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& F() {
  static Fixture f;
  return f;
}

// Runs a registry call; false when it answered with an error.
template <typename Fn>
bool Answer(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const Error&) {
  } catch (const Json::exception&) {
  }
  return false;
}

// Deletes what an input made, finalizers (and a namespace's spec.finalizers,
// the namespace controller's, through finalize) cleared, so nothing stays
// Terminating.
void Remove(Registry& reg, const ResourceInfo& r, const std::string& ns, const std::string& name) {
  kin::DeleteOptions del;
  del.grace_period_seconds = 0;
  del.propagation_policy = "Background";
  for (int attempt = 0; attempt < 3; ++attempt) {
    Json cur;
    if (!Answer([&] { cur = reg.Get(r, ns, name); })) return;  // gone
    if (cur.contains("metadata") && cur["metadata"].contains("finalizers")) {
      cur["metadata"].erase("finalizers");
    }
    Answer([&] { reg.Update(r, ns, name, cur, "", {}); });
    // A namespace's spec.finalizers change only through namespaces/NAME/finalize.
    if (r.plural == "namespaces" && Answer([&] { cur = reg.Get(r, ns, name); }) &&
        cur.contains("spec") && cur["spec"].is_object()) {
      cur["spec"].erase("finalizers");
      Answer([&] { reg.Update(r, ns, name, cur, "finalize", {}); });
    }
    Answer([&] { reg.Delete(r, ns, name, del); });
  }
  // Still there: the registry kept an object that was deleted with grace 0
  // and no finalizers.
  if (Answer([&] { reg.Get(r, ns, name); })) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = F();
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  Json body = Json::parse(data + 1, data + size, nullptr, false);
  if (!body.is_object()) return 0;

  const ResourceInfo* r = nullptr;
  if (body.contains("apiVersion") && body["apiVersion"].is_string() && body.contains("kind") &&
      body["kind"].is_string()) {
    const ResourceInfo* named = kin::FindResourceByKind(body["apiVersion"].get<std::string>(),
                                                        body["kind"].get<std::string>());
    for (const ResourceInfo* s : f.stored) {
      if (s == named) r = named;
    }
  }
  if (r == nullptr) r = f.stored[(selector & 0x7f) % f.stored.size()];
  const std::string ns = r->namespaced ? kNamespace : "";

  kin::WriteOptions wo;
  wo.field_manager = "fuzz";
  wo.dry_run = (selector & 0x80) != 0;
  Json created;
  if (!Answer([&] { created = f.registry->Create(*r, ns, body, wo); })) return 0;
  // What Create answers is the stored object: it has a name.
  if (!created.is_object() || !created["metadata"]["name"].is_string()) abort();
  const std::string name = created["metadata"]["name"].get<std::string>();
  if (name.empty()) abort();
  if (wo.dry_run) {
    // A dry run stores nothing (and the name was free: Create checked).
    if (Answer([&] { f.registry->Get(*r, ns, name); })) abort();
    return 0;
  }

  // The same body as an update of the object it made: its name and
  // resourceVersion, so it is not refused before defaulting and validation.
  Json update = body;
  if (!update.contains("metadata") || !update["metadata"].is_object())
    update["metadata"] = Json::object();
  update["metadata"]["name"] = name;
  update["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"];
  Answer([&] { f.registry->Update(*r, ns, name, update, "", {}); });
  if (r->has_subresource("status")) {
    Json now;
    if (Answer([&] { now = f.registry->Get(*r, ns, name); })) {
      update["metadata"]["resourceVersion"] = now["metadata"]["resourceVersion"];
      Answer([&] { f.registry->Update(*r, ns, name, update, "status", {}); });
    }
  }
  Remove(*f.registry, *r, ns, name);
  return 0;
}
