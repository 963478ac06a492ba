// ImageStore — container images without a registry.
//
// Images resolve locally, in this order (ImagePuller, registry_client.h,
// adds pulled images to the store; nothing here talks to a registry):
//  1. host mappings: an image name bound to a host directory, used read-only
//     as the image's root filesystem (no entrypoint, no cmd);
//  2. images loaded into the store: `docker save` archives, OCI image layouts
//     (a tar of one, or the directory itself) and plain root filesystems (a
//     directory or a tarball), and images pulled from registries (AddPulled);
//  3. built-ins: agnhost, pause and kin.dev/cluster-dns (kin itself, through
//     command_aliases, on the host's root filesystem; the last holds the
//     kube-dns pods, whose DNS kin serve answers) and busybox (a root
//     filesystem the store builds once from the host's static /bin/busybox).
//
// State on disk, under ImageStoreOptions::dir:
//   index.json             {"images": {"<normalized name>": "<image id>"}}
//   <image id>/config.json entrypoint, cmd, env, workingDir, user
//   <image id>/rootfs/     the image's layers FLATTENED into one directory
//   builtin-busybox/rootfs the busybox built-in
//   blobs/sha256/<hex>     pulled blobs (manifest configs and layers), shared
//                          by every node and pod; written by RegistryClient
// A pulled image's config.json also holds "imageID", its repo digest.
// Layers are flattened while extracting (in order; ".wh.NAME" deletes NAME
// from the layers below, ".wh..wh..opq" empties its directory of what the
// layers below put there), so an image has exactly one read-only layer and no
// overlayfs whiteout devices are needed. Extraction refuses entries whose
// path has a ".." component and never writes through a symlink (libarchive's
// SECURE_* flags; deletions check every parent themselves), so an archive
// cannot write outside the image's directory.
//
// An image id is the sha256 of its config (archives) or of its name and load
// time (root filesystems). Loading writes a fresh directory and then updates
// index.json atomically, so a crash leaves the old state usable.
//
// Thread-safety: thread-safe. Loads run concurrently with Resolve; the index
// is guarded by a mutex.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/image_config.h"

namespace kin {

struct PulledImage;

// The cluster DNS pods' image (any tag): see controllers/cluster_dns.h.
inline constexpr std::string_view kClusterDnsImage = "kin.dev/cluster-dns";
// The built-in Ingress controller's pods' image (any tag): see
// controllers/ingress.h.
inline constexpr std::string_view kIngressImage = "kin.dev/ingress";

struct ImageStoreOptions {
  std::string dir;         // the store's state (see above); created when missing
  std::string kin_binary;  // path of the kin executable (built-in images' command_aliases)
  // Image name (normalized here) -> a host directory used read-only as its rootfs.
  std::map<std::string, std::string> host_mappings;
  std::string busybox = "/bin/busybox";  // a static busybox, for the busybox built-in
};

class ImageStore {
 public:
  explicit ImageStore(ImageStoreOptions opts);

  // The image's config and layers. Error::NotFound when the image is
  // nowhere, with a message that says how to load it.
  ImageConfig Resolve(const std::string& image) const;

  // Loads every image of a `docker save` archive or an OCI image layout (a
  // tar, possibly compressed, or a directory). Returns the normalized names
  // it registered (RepoTags; OCI: io.containerd.image.name, else
  // org.opencontainers.image.ref.name). Error::Invalid for a malformed
  // archive or one that names no image.
  std::vector<std::string> LoadArchive(const std::string& file);

  // Registers a pulled image: its layers (blob files, lowest first)
  // flattened into a rootfs, under its reference and its repo digest. An
  // image whose config is stored already only gets the names.
  void AddPulled(const PulledImage& image);
  // Where pulled blobs are kept: <dir>/blobs.
  std::string BlobDir() const { return opts_.dir + "/blobs"; }

  // Registers `dir_or_tarball` (copied or extracted into the store) as the
  // root filesystem of image `name`, with an empty config.
  void LoadRootfs(const std::string& name, const std::string& dir_or_tarball);

  // Normalized image names, sorted: loaded, host-mapped and built-in (the
  // built-ins answer to any tag; one representative tag is listed).
  std::vector<std::string> List() const;

 private:
  struct Stored {
    std::string id;
  };
  void ReadIndex();
  void WriteIndexLocked() const;
  // Moves a prepared image directory into place and points `names` at it.
  void Commit(const std::string& staging, const std::string& id,
              const std::vector<std::string>& names);
  std::string BusyboxRootfs() const;
  std::string StagingDir() const;

  ImageStoreOptions opts_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> index_;  // normalized name -> image id; guarded by mu_
  mutable std::mutex busybox_mu_;             // serializes building the busybox rootfs
};

// Docker's reference normalization: "busybox" -> "docker.io/library/busybox:latest",
// "nginx:1.25" -> "docker.io/library/nginx:1.25", "registry.k8s.io/pause:3.9"
// unchanged, "index.docker.io/x/y" -> "docker.io/x/y:latest"; a digest is kept
// (and no ":latest" is added next to it). Error::Invalid for an empty name.
std::string NormalizeImageName(std::string_view image);

}  // namespace kin
