// Helpers of the model tests that do not depend on a model: error messages, the golden data directory, max
// and rms of logits, temp dirs.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "dsk/core.hpp"

namespace dsk::test {

// The message of the dsk::error f throws, or "(no error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dsk::error& e) {
    return e.what();
  }
  return "(no error)";
}

inline std::filesystem::path models_data(const std::string& name) {
  return std::filesystem::path(DSK_MODELS_TEST_DATA) / name;
}

inline double max_abs(const tensor<float, 2>& a, const tensor<float, 2>& b) {
  double m = 0;
  for (index_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a.data()[i] - b.data()[i])));
  return m;
}

inline double rms(const tensor<float, 2>& a) {
  double s = 0;
  for (index_t i = 0; i < a.size(); ++i) s += double(a.data()[i]) * a.data()[i];
  return std::sqrt(s / double(std::max<index_t>(a.size(), 1)));
}

// A fresh directory under the system temp dir, removed with its contents at scope exit.
class model_temp_dir {
 public:
  model_temp_dir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("dsk_models_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~model_temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  model_temp_dir(const model_temp_dir&) = delete;
  model_temp_dir& operator=(const model_temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace dsk::test
