// Uses a few public pieces of dsk and checks the results: exits non-zero on any mismatch.
#include <dsk/dsk.hpp>

#if defined(DSK_CONSUMER_IO)
#include <dsk/io/io.hpp>
#endif

#include <cstdio>
#include <string>

int main() {
  dsk::tensor<float, 2> t(3, 4);
  dsk::parallel_for(0, 3, [&](dsk::index_t i) {
    for (dsk::index_t j = 0; j < 4; ++j) t(i, j) = static_cast<float>(i * 4 + j);
  });
  const dsk::view<const float, 2> v = t;
  float sum = 0;
  for (dsk::index_t i = 0; i < 3; ++i)
    for (dsk::index_t j = 0; j < 4; ++j) sum += v(i, j);
  bool io_ok = true;
#if defined(DSK_CONSUMER_IO)
  try {  // dsk::io links (nlohmann_json, PCRE2): a config missing its fields is rejected with dsk::error
    (void)dsk::io::v2_config::parse("{}");
    io_ok = false;
  } catch (const dsk::error&) {
  }
#endif
  const bool ok = io_ok && sum == 66.0f && float(dsk::bf16(1.5f)) == 1.5f && dsk::int4x2::pack(-8, 7).bits == 0x78;
  std::printf("dsk consumer: compiled ISA %s, sum %.1f: %s\n", std::string(dsk::compiled_isa()).c_str(), sum,
              ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
