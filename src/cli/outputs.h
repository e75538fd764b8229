#pragma once
// What the commands check before writing a file, and how the ones holding a secret key protect it.
#include <string>
#include <vector>

#include "ckks/params.h"
#include "he/files.h"

namespace hecnn::cli {

// Throws hecnn::Error unless `out` (the value of `option`) may be written: it must not be the same
// file as any of `inputs` (std::filesystem::equivalent), a directory, a hecnn key or parameter
// file (recognized by its header), or a file of a key directory. Existing query, result, model
// and image files are overwritten: that is ordinary use. The write itself is atomic (a symbolic
// link at `out` is replaced, never followed).
void check_output(const std::string& option, const std::string& out, const std::vector<std::string>& inputs);

// `hecnn eval --predictions FILE`: one line per image, "index predicted_class logit_0 ... logit_k"
// separated by spaces (logits with 9 significant digits), images first, first + 1, ...; written
// atomically. For diffing hecnn against another runtime image by image.
void write_predictions(const std::string& path, std::size_t first, const std::vector<std::vector<double>>& logits);

// The paths of a key directory's files (present or not), as inputs for check_output.
std::vector<std::string> key_directory_files(const std::string& dir);

// For commands that hold a secret key (keygen, encrypt, decrypt, eval --encrypted): the process
// becomes non-dumpable (prctl(PR_SET_DUMPABLE, 0): no core dump of any of its memory, and other
// processes of the same user may not ptrace it) and its core size limit 0. This covers every page
// that held key material, decrypted scores or images, where madvise(MADV_DONTDUMP) would cover
// only page-aligned buffers allocated for it.
void protect_secrets();

// "WARNING: INSECURE parameters ..." on stderr when the keys use test parameters.
void warn_if_insecure(const he::KeyInfo& info, const ckks::CkksParameters& params);

}  // namespace hecnn::cli
