// `hecnn train`: runs the hecnn-train program that sits next to hecnn, with the same arguments.
// Training links libtorch; keeping it in its own executable keeps hecnn small.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

#include "cli/commands.h"

// Set by src/CMakeLists.txt: whether hecnn-train is built beside hecnn.
#ifndef HECNN_WITH_TRAIN
#define HECNN_WITH_TRAIN 1
#endif

namespace hecnn::cli {

namespace fs = std::filesystem;

int exec_train(int argc, char** argv) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path trainer = (ec ? fs::path(".") : self.parent_path()) / "hecnn-train";
#if !HECNN_WITH_TRAIN
  // Not built: say so even if an old hecnn-train from an earlier build is still lying there.
  std::cerr << "hecnn: error: `hecnn train` runs hecnn-train, which is missing: this hecnn was built without "
               "libtorch (libtorch-dev was not found when the build was configured, or -DHECNN_BUILD_TRAIN=OFF). "
               "To train, install libtorch-dev (apt-get install libtorch-dev, or scripts/setup.sh) and rebuild "
               "(scripts/build.sh; an existing build directory only needs cmake and ninja run again)\n";
  return 1;
#endif
  if (!fs::exists(trainer, ec)) {
    std::cerr << "hecnn: error: `hecnn train` runs " << trainer.string()
              << ", which is missing: it is built with libtorch (apt-get install libtorch-dev, or scripts/setup.sh), "
                 "then scripts/build.sh; a build configured with -DHECNN_BUILD_TRAIN=OFF has no trainer\n";
    return 1;
  }
  std::string name = "hecnn train";
  std::vector<char*> args{name.data()};
  for (int i = 0; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(trainer.c_str(), args.data());
  std::cerr << "hecnn: error: cannot run " << trainer.string() << ": " << std::strerror(errno) << "\n";
  return 1;
}

void register_train(CLI::App& app) {
  // Only for the subcommand list in `hecnn --help`: main() hands `hecnn train ...` to exec_train
  // before parsing, so every option (and --help) reaches hecnn-train.
  app.add_subcommand("train", "Train a model with libtorch and export it (runs hecnn-train; see hecnn train --help)")
      ->allow_extras();
}

}  // namespace hecnn::cli
