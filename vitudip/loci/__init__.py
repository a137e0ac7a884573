"""FUMA-style genomic risk loci of many GWAS dimensions, computed offline.

FUMA: Watanabe, Taskesen, van Bochoven, Posthuma, "Functional mapping and annotation of genetic
associations with FUMA", Nat Commun 8:1826 (2017), doi:10.1038/s41467-017-01261-5.

* :mod:`vitudip.loci.ld`: r² between variants of a PLINK 1 LD reference, as plink 1.9 ``--clump`` computes it.
* :mod:`vitudip.loci.scan`: one streaming pass over every dimension's summary statistics.
* :mod:`vitudip.loci.fuma`: independent significant SNPs, lead SNPs and genomic risk loci of one dimension.
* :mod:`vitudip.loci.thresholds`: study-wide thresholds (Bonferroni over dimensions, Li & Ji M_eff).
* :mod:`vitudip.loci.annotate`: loci merged across dimensions, genes, novelty, recovery of planted SNPs.
* :mod:`vitudip.loci.stage`: the ``loci`` stage that ties them together and writes its files.
"""
