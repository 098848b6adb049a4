// dsk_v2: runs a DeepSeek-V2-family model (V2-Lite, V2) from its checkpoint directory with dsk kernels on the
// host (the command line is run.hpp's, shared with dsk_lite). Without --model: the tiny preset on built-in
// random weights. Built with MPI: mpirun -np R dsk_v2 --expert-parallel splits the routed experts over the
// R processes (expert_parallel.hpp).
#include <cstdio>
#include <string_view>

#include "run.hpp"
#ifdef DSK_V2_MPI
#include "expert_parallel.hpp"

namespace {
// main of an expert-parallel run: MPI around run_cli with an mpi_expert_exchange over MPI_COMM_WORLD.
int run_expert_parallel(int argc, char** argv, dsk_v2::runner_spec spec) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "%s: MPI_Init_thread failed (--expert-parallel runs under mpirun)\n",
                 spec.name.c_str());
    return 2;
  }
  spec.expert_parallel = [] { return std::make_shared<dsk_v2::mpi_expert_exchange>(MPI_COMM_WORLD); };
  const int rc = dsk_v2::run_cli(argc, argv, spec);
  // An error that only this rank saw (a file it cannot read) would leave the others waiting for it until
  // their timeout: end the whole job instead (mpirun reports the exit code).
  if (rc != 0) MPI_Abort(MPI_COMM_WORLD, rc);
  MPI_Finalize();
  return rc;
}

}  // namespace
#endif

int main(int argc, char** argv) {
  dsk_v2::runner_spec spec{
      .name = "dsk_v2",
      .description = "dsk_v2: DeepSeek-V2 / V2-Lite inference with dsk kernels (host)",
      .checkpoint = "a DeepSeek-V2-Lite checkpoint",
      .presets = {"tiny", "v2-lite"},
      .preset_help =
          "without --model: the preset run on random weights (v2-lite: real V2-Lite widths, for "
          "speed measurements; use --layers to keep it small)",
      .load = [](const std::filesystem::path& dir, dsk_v2::weight_format fmt,
                 dsk_v2::load_options opts) { return dsk_v2::model::load(dir, fmt, opts); },
      .random =
          [](const std::string& preset, int layers, dsk_v2::weight_format fmt, dsk_v2::load_options opts) {
            dsk_v2::preset p = preset == "v2-lite" ? dsk_v2::v2_lite : dsk_v2::tiny;
            if (layers > 0) p.num_hidden_layers = layers;
            return dsk_v2::model::random(p, fmt, opts);
          },
      .add_options = {},
      .expert_parallel = {}};
#ifdef DSK_V2_MPI
  bool expert_parallel = false;  // seen before parsing (MPI starts first); the flag makes CLI11 accept it
  spec.add_options = [&](CLI::App& app) {
    app.add_flag("--expert-parallel", expert_parallel,
                 "split the routed experts over the processes of mpirun -np R (each loads E / R of them); "
                 "docs/moe.md, expert parallelism");
  };
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--expert-parallel") return run_expert_parallel(argc, argv, spec);
#else
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--expert-parallel") {
      std::fprintf(stderr,
                   "error: dsk_v2 was built without MPI, so --expert-parallel is not available (install Open "
                   "MPI: libopenmpi-dev openmpi-bin, or run tools/setup-deps.sh; then rebuild)\n");
      return 1;
    }
#endif
  return dsk_v2::run_cli(argc, argv, spec);
}
