"""Quality-assurance views of extracted features: montages and the HTML report."""
