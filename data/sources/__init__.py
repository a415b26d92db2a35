"""Where the data comes from: public datasets read and validated, a street loaded, synthetic
demo data, simulated traffic and the 2022 replay, duty rosters from a workbook."""
