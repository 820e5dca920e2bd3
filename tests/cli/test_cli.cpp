// CLI checks from outside: numpy-generated vectors through `tq roundtrip`, and bad input giving a
// one-line error with a non-zero exit status (never a crash or a stack trace).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>
#include <iterator>
#include <vector>

#include "turboquant/npy.h"
#include <cstdio>
#include <string>
#include <sys/wait.h>

#include "test_util.h"

namespace {

using Result = tq::testing::CliResult;
Result run(const std::string& cmd, bool merge_stderr = true) { return tq::testing::run_shell(cmd, merge_stderr); }

TEST(Cli, RoundtripReproducesTheoryOnNumpyVectors) {
  // Debian's python3 (with python3-numpy from scripts/setup_deps.sh) first, then whatever is on PATH.
  const std::string py = run("test -x /usr/bin/python3 && /usr/bin/python3 -c 'import numpy'").status == 0
                             ? "/usr/bin/python3 " : "python3 ";
  const Result r = run(py + TQ_SOURCE_DIR + "/tests/cli/roundtrip_check.py " + TQ_CLI_PATH);
  if (r.status == 77) GTEST_SKIP() << "python3 with numpy not available: " << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
  std::printf("%s", r.out.c_str());
}

TEST(Cli, SameSeedSameBytesAcrossProcesses) {
  // Determinism: two processes encoding the same input with the same seed write identical files
  // (decoded values identical bit for bit means identical codes and norms); another seed differs.
  const std::string tq = TQ_CLI_PATH, tmp = testing::TempDir();
  std::vector<float> x(64 * 100);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i) * 0.37) * (1 + i % 7));
  tq::npy_save_f32(tmp + "/det_in.npy", x.data(), {64, 100});
  auto read = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  for (const char* codec : {"tq3", "tq2.5", "tq3p"}) {
    for (int r = 0; r < 3; ++r) {
      const int seed = r < 2 ? 5 : 6;
      ASSERT_EQ(run(tq + " roundtrip --in " + tmp + "/det_in.npy --out " + tmp + "/det_" + std::to_string(r) +
                    ".npy --codec " + codec + " --seed " + std::to_string(seed)).status, 0);
    }
    EXPECT_EQ(read(tmp + "/det_0.npy"), read(tmp + "/det_1.npy")) << codec;
    EXPECT_NE(read(tmp + "/det_0.npy"), read(tmp + "/det_2.npy")) << codec;
  }
}

TEST(Cli, BadInputGivesOneLineErrors) {
  const std::string tq = TQ_CLI_PATH;
  const std::string tmp = testing::TempDir();
  {
    FILE* f = fopen((tmp + "/garbage.npy").c_str(), "wb");
    fputs("this is not an npy file", f);
    fclose(f);
  }
  const std::string cases[] = {
      tq + " roundtrip --in /nonexistent.npy --out " + tmp + "/o.npy",
      tq + " roundtrip --in " + tmp + "/garbage.npy --out " + tmp + "/o.npy",
      tq + " distortion --dim 128 --bits 9",
      tq + " distortion --dim 1 --bits 3",
      tq + " demo --codecs tq3,bogus",
  };
  for (const auto& c : cases) {
    const Result r = run(c);
    EXPECT_NE(r.status, 0) << c;
    EXPECT_LT(r.status, 128) << "crashed: " << c;
    EXPECT_NE(r.out.find("tq "), std::string::npos) << c << "\n" << r.out;
    EXPECT_EQ(r.out.find("terminate"), std::string::npos) << c;
  }
  EXPECT_NE(run(tq + " nosuchcommand").status, 0);
  EXPECT_EQ(run(tq + " --help").status, 0);
}

}  // namespace
