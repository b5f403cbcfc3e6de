# The run's results in one table, for `snakemake --report`: every results file's numbers.


rule results_table:
    input:
        results=results_files(),
    output:
        table=report(
            f"{RESULTS}/results_table.html",
            caption="../report/results_table.rst",
            category="Results",
            labels={"table": "all results"},
        ),
    log:
        "logs/results_table.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/results_table.py"
