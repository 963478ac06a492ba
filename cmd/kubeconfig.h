// kubeconfig files, written the way kind writes them.
//
// A kin cluster "dev" appears in a kubeconfig as a cluster, a user and a
// context all named "kin-dev" (kind: "kind-dev"), with the CA and the
// admin's client certificate and key inlined as base64 *-data fields.
// Merging adds or replaces those three entries (in place, keeping their
// position) and sets current-context; removing deletes them and unsets
// current-context if it named them. Everything else in the file (other
// clusters, users, contexts, preferences, extensions, unknown fields)
// survives with the same meaning, although not its comments or layout: the
// file is re-serialized, as kind and kubectl also do.
//
// A user's kubeconfig must never be damaged, so:
//   - a file that is not valid YAML, or whose top level or clusters / users /
//     contexts are not what kubectl expects, is an error naming the file
//     (and the line); the file is left untouched;
//   - plain scalars are read the way kubectl reads them (YAML 1.1: `yes` and
//     `on` are booleans, 0755 is octal), so that re-serializing does not
//     change their meaning for kubectl;
//   - writes are atomic (a temp file in the same directory, then rename),
//     keep an existing file's mode and owner (0600 for a new file), and go
//     to the target of a symlink rather than replacing the link;
//   - writers are serialized with client-go's lock file ("<path>.lock",
//     created exclusively), so kubectl and kind, which use the same lock,
//     do not interleave with kin.
//
// Errors: kin::Error naming the file (BadRequest for content, errno-based
// for I/O, Timeout when the lock file stays held).
//
// Thread-safety: the functions are stateless; concurrent writers of one
// file are serialized by the lock file.
#pragma once

#include <string>

#include "base/yaml.h"

namespace kin::cmd {

struct KubeconfigEntry {
  std::string cluster_name;     // kin's name for the cluster, e.g. "dev" (entries: "kin-dev")
  std::string server;           // e.g. "https://127.0.0.1:6443"
  std::string ca_pem;           // the cluster CA (certificate-authority-data)
  std::string client_cert_pem;  // the admin's certificate (client-certificate-data)
  std::string client_key_pem;   // and key (client-key-data)
};

// "kin-" + cluster_name: the name of the cluster, user and context entries.
std::string KubeconfigContextName(const std::string& cluster_name);

// A complete kubeconfig holding only `entry`, current-context set to it.
Json KubeconfigFor(const KubeconfigEntry& entry);
std::string RenderKubeconfig(const KubeconfigEntry& entry);

// The file kubectl (and kind) would write to: `explicit_path` if set; else
// the entries of $KUBECONFIG (':'-separated): a single one as is, else the
// first that exists, else the last; else $HOME/.kube/config.
std::string KubeconfigPath(const std::string& explicit_path = "");

// The kubeconfig at `path` as kubectl reads it; an empty object when the
// file is missing or empty. Throws BadRequest naming the file and line.
Json ReadKubeconfig(const std::string& path);

// Adds or replaces the cluster's three entries in `path` and makes its
// context current. Creates the file (mode 0600) and its directory if missing.
void MergeKubeconfig(const std::string& path, const KubeconfigEntry& entry);

// Removes the cluster's three entries from `path`, unsetting current-context
// if it named the cluster's context. Returns false (and leaves the file as
// it was, not even rewritten) when there was nothing to remove, including
// when the file does not exist.
bool RemoveFromKubeconfig(const std::string& path, const std::string& cluster_name);

}  // namespace kin::cmd
