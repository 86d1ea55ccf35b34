# State in a GCS bucket created once by hand (README, first deploy):
#   terraform init -backend-config="bucket=<project>-tfstate"
terraform {
  backend "gcs" {
    prefix = "spreadpilot/staging"
  }
}
