"""Discovery and replication: the analysed subjects split in two, loci found in one and tested in the other."""
