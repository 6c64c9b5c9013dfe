# The sample application's infrastructure: a Terraform root that DevRamps plans and applies in
# each stage, before the steps. It needs no provider (so it plans and applies offline): its
# outputs are what the steps read as `steps.infra.<output>`.

terraform {
  # DevRamps configures the state: the organization's state bucket with the AWS backends, a
  # local state file under .devramps/state/ with `devramps run` on one machine.
  backend "s3" {}
}

variable "env" {
  description = "The stage's name."
  type        = string
}

variable "replicas" {
  description = "How many copies of the site to serve."
  type        = number
  default     = 1
}

locals {
  host = "${var.env}.shop.example.com"
}

output "site_url" {
  value = "https://${local.host}"
}

output "replicas" {
  value = var.replicas
}

output "admin_token" {
  # Never shown in clear text by devramps: reports, events, logs and the API say "(sensitive)".
  value     = "token-for-${var.env}"
  sensitive = true
}
