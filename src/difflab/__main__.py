import sys

if __name__ == "__main__":
    # A local Snakemake run exports DIFFLAB_JOBSERVER: a pre-warmed server forks the job (difflab.jobserver);
    # without one (unset, 'off', unreachable) the verb runs in this process.
    from difflab.jobserver import forward

    status = forward(sys.argv)
    if status is None:
        from difflab.cli import main

        status = main()
    sys.exit(status)
