import json

from click.testing import CliRunner

from cli import main

CONV = "n=1,c=3,h=224,w=224,k=64,r=3,s=3,stride=1,pad=1"


def test_list_embeddings_prints_ranked_table_and_solver_statistics():
    result = CliRunner().invoke(main, ["--op", "conv", "--shape", CONV, "--list-embeddings"])
    assert result.exit_code == 0, result.output
    assert "variables" in result.output and "constraints" in result.output and "solutions" in result.output
    assert "OPTIMAL, optimum" in result.output and "listing all within 1.25x" in result.output
    assert "gemm: " in result.output and "i<-(c*r*s)" in result.output and "i 27/32" in result.output
    assert "reference embedding ranks" in result.output or "(reference)" in result.output
    cycles = [int(line.split()[1]) for line in result.output.splitlines() if line[:3].strip().isdigit()]
    assert cycles == sorted(cycles) and len(cycles) >= 5


def test_list_embeddings_json_has_every_embedding_and_the_statistics():
    result = CliRunner().invoke(main, ["--op", "conv", "--shape", CONV, "--list-embeddings", "--json"])
    document = json.loads(result.output)
    (nest,) = document["nests"]
    stats = nest["stats"]
    merged = sum(item["twins"] for item in nest["embeddings"])
    # every solution is listed (or merged as a twin) unless the exact cycles put it past 1.25x; plus the reference
    assert stats["solutions"] + 1 >= len(nest["embeddings"]) + merged >= 1
    assert stats["solver_status"] == "OPTIMAL" and stats["objective"] == stats["best_bound"] and not stats["timed_out"]
    assert sum(item["reference"] for item in nest["embeddings"]) == 1
    # every embedding the solver listed is within 1.25x of its proven optimum (the reference is added regardless)
    assert all(item["predicted_cycles"] <= 1.25 * stats["objective"] + 1 for item in nest["embeddings"] if not item["reference"])
    assert max(item["utilization"] for item in nest["embeddings"]) >= 27 / 32
    again = json.loads(CliRunner().invoke(main, ["--op", "conv", "--shape", CONV, "--list-embeddings", "--json"]).output)
    assert [item["embedding"] for item in again["nests"][0]["embeddings"]] == [item["embedding"] for item in nest["embeddings"]]


def test_alu_operator_lists_one_table_per_nest():
    result = CliRunner().invoke(main, ["--op", "requantize", "--shape", "c=64,h=7,w=7,shift=8", "--list-embeddings", "--json"])
    assert [nest["pattern"] for nest in json.loads(result.output)["nests"]] == ["alu_shr_imm", "alu_min_imm", "alu_max_imm"]


def test_bad_shape_is_one_line():
    result = CliRunner().invoke(main, ["--op", "conv", "--shape", "c=3,h=8", "--list-embeddings"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: conv: missing key 'w'"
