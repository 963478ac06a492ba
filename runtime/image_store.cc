#include "runtime/image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>

#include "base/error.h"
#include "base/file.h"
#include "base/process.h"
#include "base/version.h"
#include "base/yaml.h"
#include "runtime/registry_client.h"

namespace kin {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kAgnhost = "registry.k8s.io/e2e-test-images/agnhost";
constexpr std::string_view kPause = "registry.k8s.io/pause";
constexpr std::string_view kOldPause = "k8s.gcr.io/pause";
constexpr std::string_view kBusybox = "docker.io/library/busybox";
constexpr const char* kDefaultPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

// The repository part of a normalized name: without ":tag" and "@digest".
std::string_view Repository(std::string_view normalized) {
  size_t at = normalized.find('@');
  if (at != std::string_view::npos) normalized = normalized.substr(0, at);
  size_t colon = normalized.rfind(':');
  size_t slash = normalized.rfind('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    normalized = normalized.substr(0, colon);
  }
  return normalized;
}

std::string Sha256Hex(std::string_view data) { return Sha256Digest(data).substr(7); }

std::string ReadFileOrThrow(const std::string& path, const std::string& what) {
  auto content = ReadFileIfExists(path);
  if (!content) throw Error::Invalid(what + ": " + path + " is missing");
  return *content;
}

Json ParseJson(const std::string& text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const std::exception& e) {
    throw Error::Invalid(what + ": not valid JSON: " + e.what());
  }
}

std::vector<std::string> StringList(const Json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

// A relative path inside an archive, cleaned: no leading "./" or "/", no
// empty or "." components. Throws Invalid on a ".." component.
std::string CleanArchivePath(std::string_view raw, const std::string& what) {
  std::string out;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t slash = raw.find('/', pos);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view part = raw.substr(pos, slash - pos);
    if (part == "..") {
      throw Error::Invalid(what + ": entry \"" + std::string(raw) + "\" escapes its directory");
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    pos = slash + 1;
  }
  return out;
}

// True when no directory on the way from `root` to root/rel (exclusive) is
// a symlink, so acting on root/rel cannot reach outside `root`.
bool NoSymlinkOnTheWay(const std::string& root, const std::string& rel) {
  std::string path = root;
  size_t pos = 0;
  while (true) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) return true;
    path += "/" + rel.substr(pos, slash - pos);
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) return errno == ENOENT;
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) return false;
    pos = slash + 1;
  }
}

struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
using ArchiveReader = std::unique_ptr<archive, ArchiveReadDeleter>;
using ArchiveWriter = std::unique_ptr<archive, ArchiveWriteDeleter>;

ArchiveReader OpenArchive(const std::string& file, const std::string& what) {
  ArchiveReader a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_filename(a.get(), file.c_str(), 1 << 16) != ARCHIVE_OK) {
    int err = archive_errno(a.get());
    if (err == ENOENT || err == EACCES || err == EISDIR) {
      throw ErrnoError(err, what + ": open " + file);
    }
    throw Error::Invalid(what + ": " + file + ": " + archive_error_string(a.get()));
  }
  return a;
}

// Extracts one tar (any compression libarchive knows) into `dest`, applying
// whiteouts when `whiteouts` (an image layer) and refusing escapes.
void ExtractTar(const std::string& file, const std::string& dest, bool whiteouts,
                const std::string& what) {
  const bool root = ::geteuid() == 0;
  if (whiteouts) {
    // First pass: deletions. They concern the layers below only, so they are
    // applied before anything of this layer is written.
    ArchiveReader a = OpenArchive(file, what);
    archive_entry* entry;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
      std::string rel = CleanArchivePath(archive_entry_pathname(entry), what);
      fs::path p(rel);
      std::string base = p.filename().string();
      if (base.rfind(".wh.", 0) != 0) continue;
      std::string parent = p.parent_path().string();
      if (!NoSymlinkOnTheWay(dest, rel)) continue;
      std::string dir = parent.empty() ? dest : dest + "/" + parent;
      if (base == ".wh..wh..opq") {
        std::error_code ec;
        if (fs::is_directory(fs::symlink_status(dir, ec))) {
          for (const auto& child : fs::directory_iterator(dir)) fs::remove_all(child.path());
        }
      } else {
        fs::remove_all(dir + "/" + base.substr(4));
      }
    }
    if (rc != ARCHIVE_EOF) {
      throw Error::Invalid(what + ": " + file + ": " + archive_error_string(a.get()));
    }
  }
  ArchiveReader in = OpenArchive(file, what);
  ArchiveWriter out(archive_write_disk_new());
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_UNLINK |
              ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT;
  if (root) flags |= ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_XATTR;
  archive_write_disk_set_options(out.get(), flags);
  archive_entry* entry;
  int rc;
  while ((rc = archive_read_next_header(in.get(), &entry)) == ARCHIVE_OK) {
    std::string rel = CleanArchivePath(archive_entry_pathname(entry), what);
    if (rel.empty()) continue;  // the root directory itself
    if (whiteouts && fs::path(rel).filename().string().rfind(".wh.", 0) == 0) continue;
    mode_t type = archive_entry_filetype(entry);
    if (!root && (type == AE_IFCHR || type == AE_IFBLK)) continue;  // mknod needs root
    std::string target = dest + "/" + rel;
    archive_entry_set_pathname(entry, target.c_str());
    if (const char* link = archive_entry_hardlink(entry)) {
      std::string link_target = dest + "/" + CleanArchivePath(link, what);
      archive_entry_set_hardlink(entry, link_target.c_str());
    }
    rc = archive_write_header(out.get(), entry);
    if (rc >= ARCHIVE_WARN && archive_entry_size(entry) > 0) {
      const void* buf;
      size_t size;
      la_int64_t offset;
      int r;
      while ((r = archive_read_data_block(in.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
        if (archive_write_data_block(out.get(), buf, size, offset) < ARCHIVE_WARN) {
          r = ARCHIVE_FATAL;
          break;
        }
      }
      if (r != ARCHIVE_EOF) rc = ARCHIVE_FATAL;
    }
    if (rc < ARCHIVE_WARN) {
      throw Error::Invalid(what + ": cannot extract \"" + rel +
                           "\": " + archive_error_string(out.get()));
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) {
      throw Error::Invalid(what + ": cannot extract \"" + rel +
                           "\": " + archive_error_string(out.get()));
    }
  }
  if (rc != ARCHIVE_EOF) {
    throw Error::Invalid(what + ": " + file + ": " + archive_error_string(in.get()));
  }
  if (archive_write_close(out.get()) < ARCHIVE_WARN) {
    throw Error::Invalid(what + ": " + archive_error_string(out.get()));
  }
}

// A directory removed (recursively) on destruction unless Release()d.
class TempDir {
 public:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

Json ConfigJson(const ImageConfig& c) {
  return Json{{"entrypoint", c.entrypoint},
              {"cmd", c.cmd},
              {"env", c.env},
              {"workingDir", c.working_dir},
              {"user", c.user}};
}

// The image config's "config" section (docker and OCI share it).
Json ImageConfigJson(const Json& blob) {
  Json out{{"entrypoint", Json::array()},
           {"cmd", Json::array()},
           {"env", Json::array()},
           {"workingDir", ""},
           {"user", ""}};
  const Json* c = blob.contains("config") && blob["config"].is_object()   ? &blob["config"]
                  : blob.contains("Config") && blob["Config"].is_object() ? &blob["Config"]
                                                                          : nullptr;
  if (c == nullptr) return out;
  out["entrypoint"] = StringList(c->value("Entrypoint", Json()));
  out["cmd"] = StringList(c->value("Cmd", Json()));
  out["env"] = StringList(c->value("Env", Json()));
  if (c->contains("WorkingDir") && (*c)["WorkingDir"].is_string()) {
    out["workingDir"] = (*c)["WorkingDir"];
  }
  if (c->contains("User") && (*c)["User"].is_string()) out["user"] = (*c)["User"];
  return out;
}

// One image found in an archive: its names, config blob and layer files.
struct ArchiveImage {
  std::vector<std::string> names;
  std::string config;  // the config blob's text
  std::vector<std::string> layers;
};

std::string BlobPath(const std::string& root, const std::string& digest, const std::string& what) {
  size_t colon = digest.find(':');
  if (colon == std::string::npos) throw Error::Invalid(what + ": bad digest \"" + digest + "\"");
  return root + "/blobs/" + CleanArchivePath(digest.substr(0, colon), what) + "/" +
         CleanArchivePath(digest.substr(colon + 1), what);
}

std::vector<ArchiveImage> ReadDockerSave(const std::string& root, const std::string& what) {
  Json manifest = ParseJson(ReadFileOrThrow(root + "/manifest.json", what), what);
  if (!manifest.is_array()) throw Error::Invalid(what + ": manifest.json is not a list");
  std::vector<ArchiveImage> images;
  for (const auto& m : manifest) {
    ArchiveImage image;
    image.names = StringList(m.value("RepoTags", Json()));
    image.config = ReadFileOrThrow(
        root + "/" + CleanArchivePath(m.value("Config", std::string()), what), what);
    for (const auto& layer : StringList(m.value("Layers", Json()))) {
      image.layers.push_back(root + "/" + CleanArchivePath(layer, what));
    }
    images.push_back(std::move(image));
  }
  return images;
}

// Follows an OCI descriptor to an image manifest (through image indexes,
// preferring linux/amd64) and fills `image` from it.
void ReadOciManifest(const std::string& root, const Json& descriptor, ArchiveImage& image,
                     const std::string& what, int depth = 0) {
  if (depth > 4) throw Error::Invalid(what + ": image indexes nest too deeply");
  Json m = ParseJson(
      ReadFileOrThrow(BlobPath(root, descriptor.value("digest", std::string()), what), what), what);
  if (m.contains("manifests")) {
    const Json* chosen = nullptr;
    for (const auto& d : m["manifests"]) {
      const Json platform = d.value("platform", Json::object());
      if (platform.value("os", "linux") == "linux" &&
          platform.value("architecture", "amd64") == "amd64") {
        chosen = &d;
        break;
      }
    }
    if (chosen == nullptr) throw Error::Invalid(what + ": no linux/amd64 image in the index");
    return ReadOciManifest(root, *chosen, image, what, depth + 1);
  }
  image.config = ReadFileOrThrow(
      BlobPath(root, m.value("config", Json::object()).value("digest", std::string()), what), what);
  for (const auto& layer : m.value("layers", Json::array())) {
    image.layers.push_back(BlobPath(root, layer.value("digest", std::string()), what));
  }
}

std::vector<ArchiveImage> ReadOciLayout(const std::string& root, const std::string& what) {
  Json index = ParseJson(ReadFileOrThrow(root + "/index.json", what), what);
  std::vector<ArchiveImage> images;
  for (const auto& d : index.value("manifests", Json::array())) {
    ArchiveImage image;
    Json annotations = d.value("annotations", Json::object());
    std::string name = annotations.value("io.containerd.image.name", std::string());
    if (name.empty()) name = annotations.value("org.opencontainers.image.ref.name", std::string());
    if (!name.empty()) image.names.push_back(name);
    ReadOciManifest(root, d, image, what);
    images.push_back(std::move(image));
  }
  return images;
}

void WriteBusyboxRootfs(const std::string& busybox, const std::string& root) {
  for (const char* d :
       {"bin", "etc", "proc", "sys", "dev", "root", "tmp", "usr/bin", "usr/sbin", "sbin", "var"}) {
    fs::create_directories(root + "/" + d);
  }
  fs::permissions(root + "/tmp", static_cast<fs::perms>(01777));
  fs::copy_file(busybox, root + "/bin/busybox");
  fs::permissions(root + "/bin/busybox", static_cast<fs::perms>(0755));
  CommandResult list = RunCommand({busybox, "--list"}, std::chrono::seconds(10));
  if (!list.status.success()) throw Error::Internal(busybox + " --list failed: " + list.err);
  size_t pos = 0;
  while (pos < list.out.size()) {
    size_t nl = list.out.find('\n', pos);
    if (nl == std::string::npos) nl = list.out.size();
    std::string applet = list.out.substr(pos, nl - pos);
    pos = nl + 1;
    if (applet.empty() || applet == "busybox" || applet.find('/') != std::string::npos) continue;
    std::error_code ec;
    fs::create_symlink("busybox", root + "/bin/" + applet, ec);
  }
  WriteFileAtomic(root + "/etc/passwd",
                  "root:x:0:0:root:/root:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/home:/bin/false\n",
                  0644, false);
  WriteFileAtomic(root + "/etc/group", "root:x:0:\nnobody:x:65534:\n", 0644, false);
}

}  // namespace

std::string NormalizeImageName(std::string_view image) {
  if (image.empty()) throw Error::Invalid("image name must not be empty");
  std::string name(image);
  std::string digest;
  size_t at = name.find('@');
  if (at != std::string::npos) {
    digest = name.substr(at);
    name = name.substr(0, at);
  }
  std::string tag;
  size_t colon = name.rfind(':');
  size_t slash = name.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    tag = name.substr(colon);
    name = name.substr(0, colon);
  }
  if (name.empty()) throw Error::Invalid("invalid image name \"" + std::string(image) + "\"");
  std::string domain, rest = name;
  size_t first = name.find('/');
  if (first != std::string::npos) {
    std::string head = name.substr(0, first);
    if (head.find_first_of(".:") != std::string::npos || head == "localhost") {
      domain = head;
      rest = name.substr(first + 1);
    }
  }
  if (domain.empty() || domain == "index.docker.io") domain = "docker.io";
  if (domain == "docker.io" && rest.find('/') == std::string::npos) rest = "library/" + rest;
  if (tag.empty() && digest.empty()) tag = ":latest";
  return domain + "/" + rest + tag + digest;
}

ImageStore::ImageStore(ImageStoreOptions opts) : opts_(std::move(opts)) {
  if (opts_.dir.empty()) throw Error::Invalid("image store: dir is required");
  fs::create_directories(opts_.dir);
  // No symlink in our own path: extraction refuses to write through any.
  opts_.dir = fs::canonical(opts_.dir).string();
  std::map<std::string, std::string> mappings;
  for (const auto& [name, dir] : opts_.host_mappings) mappings[NormalizeImageName(name)] = dir;
  opts_.host_mappings = std::move(mappings);
  ReadIndex();
}

void ImageStore::ReadIndex() {
  auto text = ReadFileIfExists(opts_.dir + "/index.json");
  if (!text) return;
  Json j = ParseJson(*text, "image store index " + opts_.dir + "/index.json");
  if (!j.is_object() || !j.contains("images") || !j["images"].is_object()) return;
  const Json& images = j["images"];
  for (auto it = images.begin(); it != images.end(); ++it) {
    if (it.value().is_string()) index_[it.key()] = it.value().get<std::string>();
  }
}

void ImageStore::WriteIndexLocked() const {
  Json j{{"images", Json::object()}};
  for (const auto& [name, id] : index_) j["images"][name] = id;
  WriteFileAtomic(opts_.dir + "/index.json", j.dump(2) + "\n", 0644);
}

std::string ImageStore::StagingDir() const {
  std::string tmpl = opts_.dir + "/.staging-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw ErrnoError(errno, "create " + tmpl);
  return tmpl;
}

void ImageStore::Commit(const std::string& staging, const std::string& id,
                        const std::vector<std::string>& names) {
  std::lock_guard lock(mu_);
  std::string final_dir = opts_.dir + "/" + id;
  if (fs::exists(final_dir)) {
    fs::remove_all(staging);  // the same content is already there
  } else {
    fs::rename(staging, final_dir);
  }
  std::set<std::string> replaced;
  for (const auto& name : names) {
    auto it = index_.find(name);
    if (it != index_.end() && it->second != id) replaced.insert(it->second);
    index_[name] = id;
  }
  WriteIndexLocked();
  // Content no name points at any more goes (containers that still run on
  // it keep their mounted overlay's view).
  for (const auto& [name, other] : index_) replaced.erase(other);
  for (const auto& old : replaced) {
    std::error_code ec;
    fs::remove_all(opts_.dir + "/" + old, ec);
  }
}

std::string ImageStore::BusyboxRootfs() const {
  std::lock_guard lock(busybox_mu_);
  std::string dir = opts_.dir + "/builtin-busybox";
  std::string rootfs = dir + "/rootfs";
  if (fs::exists(rootfs)) return rootfs;
  if (!fs::exists(opts_.busybox)) {
    throw Error::NotFound("image \"docker.io/library/busybox\" is built from " + opts_.busybox +
                          ", which is missing: install busybox-static");
  }
  TempDir staging(StagingDir());
  WriteBusyboxRootfs(opts_.busybox, staging.path());
  fs::create_directories(dir);
  fs::rename(staging.path(), rootfs);
  staging.Release();
  return rootfs;
}

ImageConfig ImageStore::Resolve(const std::string& image) const {
  ImageConfig c;
  c.reference = NormalizeImageName(image);
  std::string_view repo = Repository(c.reference);

  if (auto it = opts_.host_mappings.find(c.reference); it != opts_.host_mappings.end()) {
    c.layers = {it->second};
    return c;
  }
  std::string id;
  {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(c.reference); it != index_.end()) id = it->second;
  }
  if (id.empty()) {
    // Another process (`kin load ...`) may have added it since we read the index.
    if (auto text = ReadFileIfExists(opts_.dir + "/index.json")) {
      Json j = Json::parse(*text, nullptr, false);
      if (j.is_object() && j.contains("images") && j["images"].is_object() &&
          j["images"].contains(c.reference) && j["images"][c.reference].is_string()) {
        id = j["images"][c.reference].get<std::string>();
      }
    }
  }
  if (!id.empty()) {
    std::string dir = opts_.dir + "/" + id;
    Json j = ParseJson(ReadFileOrThrow(dir + "/config.json", "image " + c.reference),
                       "image " + c.reference + " config");
    c.entrypoint = StringList(j.value("entrypoint", Json()));
    c.cmd = StringList(j.value("cmd", Json()));
    c.env = StringList(j.value("env", Json()));
    c.working_dir = j.value("workingDir", std::string());
    c.user = j.value("user", std::string());
    c.image_id = j.value("imageID", std::string());
    c.layers = {dir + "/rootfs"};
    return c;
  }
  if (repo == kAgnhost) {
    c.entrypoint = {"/agnhost"};
    c.cmd = {"pause"};
    c.command_aliases = {{"/agnhost", {opts_.kin_binary, "agnhost"}}};
    return c;
  }
  if (repo == kPause || repo == kOldPause) {
    c.entrypoint = {"/pause"};
    c.command_aliases = {{"/pause", {opts_.kin_binary, "agnhost", "pause"}}};
    return c;
  }
  if (repo == kClusterDnsImage) {
    // The kube-dns pods' container only holds the pod: kin serve answers
    // DNS on sockets in the pod's namespace (controllers/cluster_dns.h).
    c.entrypoint = {"/cluster-dns"};
    c.command_aliases = {{"/cluster-dns", {opts_.kin_binary, "agnhost", "pause"}}};
    return c;
  }
  if (repo == kIngressImage) {
    // Likewise the ingress controller's: kin serve proxies on sockets in
    // the pod's namespace (controllers/ingress.h).
    c.entrypoint = {"/ingress-controller"};
    c.command_aliases = {{"/ingress-controller", {opts_.kin_binary, "agnhost", "pause"}}};
    return c;
  }
  if (repo == kBusybox) {
    c.cmd = {"sh"};
    c.env = {kDefaultPath};
    c.layers = {BusyboxRootfs()};
    return c;
  }
  throw Error::NotFound("image \"" + image +
                        "\" is not present: load it with `kin load image-archive FILE` (docker "
                        "save / OCI layout) or `kin load rootfs " +
                        image + " DIR|TARBALL`");
}

std::vector<std::string> ImageStore::LoadArchive(const std::string& file) {
  const std::string what = "load image archive " + file;
  std::error_code ec;
  if (!fs::exists(file, ec)) throw Error::NotFound(what + ": no such file");
  std::optional<TempDir> unpacked;
  std::string root = file;
  if (!fs::is_directory(file)) {
    unpacked.emplace(StagingDir());
    ExtractTar(file, unpacked->path(), false, what);
    root = unpacked->path();
  }
  std::vector<ArchiveImage> images;
  if (fs::exists(root + "/manifest.json")) {
    images = ReadDockerSave(root, what);
  } else if (fs::exists(root + "/index.json")) {
    images = ReadOciLayout(root, what);
  } else {
    throw Error::Invalid(what +
                         ": neither a docker save archive (manifest.json) nor an OCI "
                         "image layout (index.json)");
  }
  std::vector<std::string> loaded;
  for (const auto& image : images) {
    if (image.names.empty()) continue;
    std::vector<std::string> names;
    for (const auto& n : image.names) names.push_back(NormalizeImageName(n));
    std::string id = Sha256Hex(image.config);
    Json config = ImageConfigJson(ParseJson(image.config, what + ": image config"));
    TempDir staging(StagingDir());
    fs::create_directory(staging.path() + "/rootfs");
    for (const auto& layer : image.layers) {
      ExtractTar(layer, staging.path() + "/rootfs", true, what + ": layer " + layer);
    }
    WriteFileAtomic(staging.path() + "/config.json", config.dump(2) + "\n", 0644, false);
    Commit(staging.path(), id, names);
    staging.Release();
    loaded.insert(loaded.end(), names.begin(), names.end());
  }
  if (loaded.empty()) throw Error::Invalid(what + ": the archive names no image");
  return loaded;
}

void ImageStore::AddPulled(const PulledImage& image) {
  const std::string what = "pull " + image.reference;
  std::vector<std::string> names = {image.reference, image.repo_digest};
  std::string id = Sha256Hex(image.config);
  Json config = ImageConfigJson(ParseJson(image.config, what + ": image config"));
  config["imageID"] = image.repo_digest;
  {
    std::lock_guard lock(mu_);
    if (fs::exists(opts_.dir + "/" + id + "/config.json")) {
      // The same content under (maybe) a new name: no extraction. The stored
      // config gets this repo digest (the same config may come from another
      // repository).
      WriteFileAtomic(opts_.dir + "/" + id + "/config.json", config.dump(2) + "\n", 0644);
      for (const auto& n : names) index_[n] = id;
      WriteIndexLocked();
      return;
    }
  }
  TempDir staging(StagingDir());
  fs::create_directory(staging.path() + "/rootfs");
  for (const auto& layer : image.layers) {
    ExtractTar(layer, staging.path() + "/rootfs", true, what + ": layer " + layer);
  }
  WriteFileAtomic(staging.path() + "/config.json", config.dump(2) + "\n", 0644, false);
  Commit(staging.path(), id, names);
  staging.Release();
}

void ImageStore::LoadRootfs(const std::string& name, const std::string& dir_or_tarball) {
  std::string normalized = NormalizeImageName(name);
  const std::string what = "load root filesystem " + dir_or_tarball + " as " + normalized;
  std::error_code ec;
  if (!fs::exists(dir_or_tarball, ec)) throw Error::NotFound(what + ": no such file or directory");
  static std::atomic<uint64_t> counter{0};
  std::string id =
      Sha256Hex(normalized + "\n" +
                std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "\n" +
                std::to_string(::getpid()) + "\n" + std::to_string(counter++));
  TempDir staging(StagingDir());
  std::string rootfs = staging.path() + "/rootfs";
  if (fs::is_directory(dir_or_tarball)) {
    fs::copy(dir_or_tarball, rootfs, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  } else {
    fs::create_directory(rootfs);
    ExtractTar(dir_or_tarball, rootfs, true, what);
  }
  WriteFileAtomic(staging.path() + "/config.json", ConfigJson(ImageConfig{}).dump(2) + "\n", 0644,
                  false);
  Commit(staging.path(), id, {normalized});
  staging.Release();
}

std::vector<std::string> ImageStore::List() const {
  std::set<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, id] : index_) names.insert(name);
  }
  for (const auto& [name, dir] : opts_.host_mappings) names.insert(name);
  names.insert(std::string(kAgnhost) + ":2.52");
  names.insert(std::string(kPause) + ":3.9");
  names.insert(std::string(kBusybox) + ":latest");
  names.insert(std::string(kClusterDnsImage) + ":" + kVersion);
  names.insert(std::string(kIngressImage) + ":" + kVersion);
  return {names.begin(), names.end()};
}

}  // namespace kin
