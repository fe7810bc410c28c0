// `tables`: Markdown + CSV tables (ours beside the paper's numbers) and PNG plots from a results folder.
#include <cstdio>
#include <filesystem>

#include "cli/commands/common.h"
#include "core/atomic_file.h"
#include "eval/tables.h"

namespace cvq {

void register_tables(CLI::App& app) {
  struct Opts : CommonOptions {
    TablesOptions t;
    bool no_plots = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tables", "merge a results folder (all shards) into tables and plots");
  add_common_options(*cmd, *o, false);
  cmd->add_option("--results", o->t.results_dir, "results folder of `eval --config ... --out`")->required();
  cmd->add_option("--out", o->t.out_dir, "where to write the tables (default: <results>/tables)");
  cmd->add_option("--paper", o->t.paper_path, "published numbers (default: experiments/paper.json)");
  cmd->add_option("--reference", o->t.reference_dir,
                  "another results folder (e.g. the committed results/quick): print ours beside it, cell by cell");
  cmd->add_option("--python", o->t.python,
                  "python with matplotlib for scripts/plot.py (default: $COMMVQ_PYTHON, /usr/bin/python3, python3)");
  cmd->add_flag("--no-plots", o->no_plots, "tables only");
  cmd->callback([o] {
    apply_common_options(*o);
    TablesOptions t = o->t;
    if (t.out_dir.empty()) t.out_dir = t.results_dir + "/tables";
    t.plots = !o->no_plots;
    const TablesResult r = make_tables(t);
    std::printf("%s", read_file(t.out_dir + "/main.md").c_str());
    if (!r.reference_md.empty()) std::printf("\n%s", r.reference_md.c_str());
    std::printf("wrote %zu files to %s\n", r.files.size(), t.out_dir.c_str());
    if (!r.python.empty() && r.plot_note.empty()) {
      int n_png = 0;
      for (const auto& e : std::filesystem::directory_iterator(t.out_dir))
        if (e.path().extension() == ".png") ++n_png;
      std::printf("plots: %d PNG files in %s (matplotlib of %s)\n", n_png, t.out_dir.c_str(), r.python.c_str());
    }
    if (!r.plot_note.empty()) std::printf("%s\n", r.plot_note.c_str());
    write_json(o->json_path, r.summary);
  });
}

}  // namespace cvq
